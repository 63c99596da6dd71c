"""Pages of family notifications: the public confirm link, the inbox with its badge, the
contact list and notifications on the elder's page, and the back office's template check."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.core import crypto
from tanfang.monitoring.alerts import Raise, alert_raise
from tanfang.notifications.admin import template_problem
from tanfang.notifications.family import notifications_escalate
from tanfang.notifications.models import FamilyContact, Message, Notification
from tanfang.notifications.services import Address, Recipient, notify
from tests.factories import make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db


@pytest.fixture
def place() -> Any:
    tree = make_tree()
    community = tree.communities[0]
    elder = parent_with_son(community)
    worker = make_user(Role.COMMUNITY_WORKER, community)
    return tree, community, elder, worker


def _critical(elder: Any) -> tuple[Notification, str]:
    """A critical alert of the elder; its notification and the confirm token."""
    now = timezone.now()
    alert, _ = alert_raise(
        Raise(
            key=f"web-{now.isoformat()}",
            kind="inactivity",
            rule="inactivity",
            severity="critical",
            started_at=now - dt.timedelta(hours=12),
            detected_at=now,
            evidence={},
            elder=elder,
        ),
        now=now,
    )
    assert alert is not None
    notification = Notification.objects.get(cause_type="alert", cause_id=alert.pk)
    token = notification.params["link"].rstrip("/").rsplit("/", 1)[1]
    return notification, token


def test_the_confirm_page_shows_the_message_and_confirms_with_a_reply(place: Any) -> None:
    _tree, _community, elder, _worker = place
    notification, token = _critical(elder)
    client = Client()
    page = client.get(f"/n/{token}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert notification.text in body.replace("&amp;", "&")
    assert elder.name not in body and elder.id_number_masked not in body
    assert page["Cache-Control"].startswith("max-age=0") or "no-cache" in page["Cache-Control"]
    done = client.post(f"/n/{token}/", {"reply": "我十分钟后到"})
    assert done.status_code == 302
    notification.refresh_from_db()
    assert notification.confirmed_at is not None
    assert notification.reply == "我十分钟后到"
    assert notification.escalate_at is None
    assert "我十分钟后到" in client.get(done["Location"]).content.decode()
    assert notifications_escalate(now=timezone.now() + dt.timedelta(days=1)) == 0


def test_an_unknown_token_is_a_404(place: Any) -> None:
    assert Client().get("/n/not-a-token/").status_code == 404
    assert Client().post("/n/not-a-token/", {"reply": "x"}).status_code == 404


def test_the_inbox_lists_unread_first_and_marks_read(place: Any) -> None:
    _tree, community, elder, worker = place
    other = make_user(Role.COMMUNITY_WORKER, community)
    for n, who in enumerate((worker, worker, other)):
        notify(
            key=f"inbox-test-{n}",
            topic="escalation",
            template="unconfirmed_escalation",
            params={
                "elder": "张老人",
                "community": community.name,
                "what": "告警",
                "time": "11-30 10:00",
                "minutes": 30,
                "link": "http://x/alerts/1/",
            },
            recipients=[
                Recipient(
                    kind="user",
                    ref=f"user:{who.pk}",
                    name=who.username,
                    addresses=(Address("inbox"),),
                    user_id=who.pk,
                )
            ],
            elder=elder,
            urgent=True,
            cause=("alert", 1000 + n),
        )
    client = Client()
    client.force_login(worker)
    page = client.get("/inbox/")
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count('data-testid="inbox-row"') == 2
    assert 'data-testid="inbox-unread">2<' in body  # the badge in the header
    assert "/alerts/1000/" in body
    mine = list(Message.objects.filter(notification__user=worker).values_list("pk", flat=True))
    theirs = Message.objects.get(notification__user=other)
    client.post("/inbox/read/", {"message": [str(mine[0]), str(theirs.pk)]})
    theirs.refresh_from_db()
    assert theirs.read_at is None  # not hers
    body = client.get("/inbox/").content.decode()
    assert 'data-testid="inbox-unread">1<' in body
    rows = body.split('data-testid="inbox-row"')[1:]
    assert 'data-read="no"' in rows[0] and 'data-read="yes"' in rows[1]  # unread first
    client.post("/inbox/read/", {"all": "1"})
    assert 'data-testid="inbox-unread"' not in client.get("/inbox/").content.decode()


def test_the_contact_list_on_the_elder_page(place: Any) -> None:
    _tree, _community, elder, worker = place
    client = Client()
    client.force_login(worker)
    added = client.post(
        f"/elders/{elder.pk}/family-contacts/",
        {"name": "张丽", "relation": "child", "phone": "13912345678", "email": "li@example.com"},
    )
    assert added.status_code == 302
    contact = FamilyContact.objects.get(elder=elder)
    assert crypto.decrypt(contact.phone_cipher) == "13912345678"
    page = client.get(f"/elders/{elder.pk}/").content.decode()
    assert 'data-testid="contact-first"' in page and "138****8000" in page
    assert "139****5678" in page and "l***@example.com" in page
    assert "13912345678" not in page and "li@example.com" not in page
    bad = client.post(f"/elders/{elder.pk}/family-contacts/", {"name": "李四", "relation": "child"})
    assert bad.status_code == 400
    client.post(f"/elders/{elder.pk}/family-contacts/deactivate/", {"contact": contact.pk})
    contact.refresh_from_db()
    assert contact.active is False
    # A visitor reads the list but may not change it.
    visitor = make_user(Role.VISITOR, elder.community)
    client.force_login(visitor)
    refused = client.post(
        f"/elders/{elder.pk}/family-contacts/",
        {"name": "王五", "relation": "child", "phone": "13900000000"},
    )
    assert refused.status_code == 403


def test_the_elder_page_shows_who_was_told_what(place: Any) -> None:
    _tree, _community, elder, worker = place
    notification, _token = _critical(elder)
    client = Client()
    client.force_login(worker)
    page = client.get(f"/elders/{elder.pk}/").content.decode()
    assert 'data-testid="elder-notification" data-topic="alert"' in page
    assert 'data-testid="notification-message" data-state="pending"' in page
    assert notification.recipient_name in page


def test_a_template_override_is_checked() -> None:
    assert template_problem("alert_raised", "{elder}{what}{time}") == ""
    assert "id_number" in template_problem("alert_raised", "{elder}{id_number}")
    assert template_problem("alert_raised", "{elder") != ""
    assert template_problem("alert_urgent", "{elder} {link}") == ""
