"""The demo's messages: the local sinks started for unconfigured channels, and the demo data
the notification flows need. The SMS goes through the real outbox to the real sink."""

from __future__ import annotations

import os
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from tanfang.accounts.models import User
from tanfang.core import crypto
from tanfang.demo import serving
from tanfang.demo.services import demo_build
from tanfang.demo.shapes import is_demo_phone
from tanfang.demo.sinks import DemoSinks, demo_sinks_start
from tanfang.notifications.channels.registry import channel_for, channels_reset
from tanfang.notifications.models import FamilyContact, Message, MessageState, WeComGroup
from tanfang.notifications.outbox import outbox_run
from tanfang.notifications.recipients import family_recipients, group_recipients
from tanfang.notifications.services import notify
from tanfang.notifications.sinks.wecom_server import DEMO_WECOM_KEY
from tanfang.registry.models import Elder, VisitorAssignment

ENV = (
    "SMS_ENDPOINT",
    "SMS_PROTOCOL",
    "SMS_ACCESS_KEY_ID",
    "SMS_ACCESS_KEY_SECRET",
    "WECOM_URL",
    "WECOM_ENABLED",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
)
PARAMS = {"elder": "王奶奶", "what": "SOS", "time": "10:00", "phone": "110", "link": "http://x/"}


@pytest.fixture
def sinks(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoSinks]:
    """Nothing configured, as on a laptop; the settings and environment come back after."""
    settings.SMS_ENDPOINT = ""
    settings.SMTP_HOST = ""
    settings.WECOM_ENABLED = False
    settings.SMS_RATE = 0
    settings.REDIS_URL = ""
    for name in ENV:
        monkeypatch.delenv(f"TANFANG_{name}", raising=False)
    started = demo_sinks_start()
    yield started
    started.stop()
    channels_reset()


def test_the_demo_starts_a_sink_for_each_unconfigured_channel(sinks: DemoSinks) -> None:
    assert sinks.sms is not None and sinks.wecom is not None and sinks.smtp is not None
    assert [line.split(":")[0] for line in sinks.lines] == [
        "SMS sent to families",
        "WeCom group posts",
        "E-mail caught by the SMTP sink",
    ]
    assert f"http://127.0.0.1:{sinks.sms.port}/_sink/messages" in sinks.lines[0]
    assert os.environ["TANFANG_SMS_ENDPOINT"] == sinks.sms.endpoint  # for gunicorn
    assert os.environ["TANFANG_WECOM_ENABLED"] == "true"
    assert os.environ["TANFANG_SMTP_PORT"] == str(sinks.smtp.port)
    for name in ("sms", "wecom", "email"):
        assert channel_for(name) is not None


def test_a_configured_channel_is_left_alone(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.SMS_ENDPOINT = "dysmsapi.aliyuncs.com"
    settings.SMTP_HOST = "mail.example.cn"
    settings.WECOM_ENABLED = True
    for name in ENV:
        monkeypatch.delenv(f"TANFANG_{name}", raising=False)
    started = demo_sinks_start()
    try:
        assert started.lines == [] and started.sms is None
        assert "TANFANG_SMS_ENDPOINT" not in os.environ
    finally:
        started.stop()
        channels_reset()


@pytest.mark.django_db
def test_the_demo_sends_sms_wecom_and_mail_to_the_sinks(sinks: DemoSinks) -> None:
    demo_build(seed=5, elders=60)
    visitor = User.objects.get(username="visitor")
    community = User.objects.get(username="community")
    assert is_demo_phone(visitor.phone) and is_demo_phone(community.phone)
    assert community.area is not None
    group = WeComGroup.objects.get(area=community.area)
    assert crypto.decrypt(group.key_cipher) == DEMO_WECOM_KEY
    elders = VisitorAssignment.objects.filter(visitor=visitor).values_list("elder_id", flat=True)
    contacts = FamilyContact.objects.filter(elder_id__in=elders)
    for contact in contacts:
        assert is_demo_phone(crypto.decrypt(contact.phone_cipher))
    mailed = contacts.exclude(email_cipher="")
    assert mailed.count() >= 3
    assert all(crypto.decrypt(c.email_cipher).endswith("@example.cn") for c in mailed)

    elder = Elder.objects.get(pk=mailed.order_by("elder_id", "id")[0].elder_id)
    family = family_recipients(elder)
    notify(
        key="demo-sinks",
        topic="emergency",
        template="emergency_family",
        params=PARAMS,
        recipients=[*family, *group_recipients([community.area_id])],
        elder=elder,
        urgent=True,
        delivery="all",
    )
    assert outbox_run(worker="demo-test", max_seconds=0, in_flight=1) >= 3
    sent = Message.objects.filter(notification__key__startswith="demo-sinks")
    assert set(sent.values_list("state", flat=True)) == {MessageState.SENT}
    assert {"sms", "wecom", "email"} <= set(sent.values_list("channel", flat=True))
    assert sinks.sms is not None and sinks.wecom is not None and sinks.smtp is not None
    phones = {crypto.decrypt(c.phone_cipher) for c in FamilyContact.objects.filter(elder=elder)}
    assert phones <= {m["phone"] for m in sinks.sms.messages()}
    assert [m["key"] for m in sinks.wecom.messages()] == [DEMO_WECOM_KEY]
    assert sinks.smtp.messages(to=f"family{elder.pk}@example.cn")


@pytest.mark.django_db
@pytest.mark.parametrize("flag", [[], ["--no-sinks"]])
def test_the_demo_command_prints_the_sinks_before_serving(
    settings: Any, monkeypatch: pytest.MonkeyPatch, flag: list[str]
) -> None:
    settings.SMS_ENDPOINT = ""
    settings.SMTP_HOST = ""
    settings.WECOM_ENABLED = False
    settings.TANFANG_PUBLIC_URL = "http://127.0.0.1:8000"
    for name in (*ENV, "PUBLIC_URL"):
        monkeypatch.delenv(f"TANFANG_{name}", raising=False)
    served: list[bool] = []

    def serve(**kw: Any) -> None:
        served.append(channel_for("sms") is not None)
        raise SystemExit(0)

    monkeypatch.setattr(serving, "collect_static", lambda: None)
    monkeypatch.setattr(serving, "serve", serve)
    out = StringIO()
    try:
        with pytest.raises(SystemExit):
            call_command(
                "demo", "--elders", "10", "--seed", "3", "--port", "8390", *flag, stdout=out
            )
    finally:
        channels_reset()
    printed = out.getvalue()
    assert served == [not flag]
    assert os.environ["TANFANG_PUBLIC_URL"] == settings.TANFANG_PUBLIC_URL
    assert settings.TANFANG_PUBLIC_URL == "http://127.0.0.1:8390"  # links lead to the server
    assert ("SMS sent to families: http://127.0.0.1:" in printed) is (not flag)
