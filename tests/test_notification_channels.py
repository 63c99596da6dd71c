"""The channels against their real local servers: Alibaba's SMS SDK against the signature-
checking SMS sink, the WeCom robot against the webhook sink, e-mail against aiosmtpd.

Each test starts its own servers on free ports, so parallel runs do not meet.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from email.message import Message as HeaderMap
from typing import Any

import pytest

from tanfang.notifications.channels.base import Outcome, Outgoing
from tanfang.notifications.channels.email import message_id
from tanfang.notifications.channels.registry import channel_for, channels_reset
from tanfang.notifications.sinks.sms_server import SmsSink, string_to_sign
from tanfang.notifications.sinks.smtp_server import SmtpSink
from tanfang.notifications.sinks.wecom_server import WeComSink

AK, SECRET = "test-ak", "test-secret-" + uuid.uuid4().hex[:8]


def sms(n: int, phone: str, code: str = "SMS_TF_FAMILY", **params: Any) -> Outgoing:
    return Outgoing(
        message_id=n,
        key=f"k-{uuid.uuid4().hex[:8]}-{n}",
        address=phone,
        body=f"短信 {n}",
        sms_template_code=code,
        sms_params=params,
    )


@pytest.fixture
def sms_sink(settings: Any) -> Iterator[SmsSink]:
    sink = SmsSink.start(access_key_id=AK, secret=SECRET)
    settings.SMS_ENDPOINT = sink.endpoint
    settings.SMS_PROTOCOL = "http"
    settings.SMS_ACCESS_KEY_ID = AK
    settings.SMS_ACCESS_KEY_SECRET = SECRET
    settings.SMS_SIGN_NAME = "探访"
    channels_reset()
    yield sink
    sink.stop()
    channels_reset()


def _sms() -> Any:
    channel = channel_for("sms")
    assert channel is not None
    return channel


# -- SMS -------------------------------------------------------------------------------------
def test_sms_batch_goes_out_in_one_signed_request(sms_sink: SmsSink) -> None:
    batch = [
        sms(1, "13800000001", elder="王奶奶", what="跌倒"),
        sms(2, "+86 138-0000-0002", elder="李爷爷", what="SOS"),
        sms(3, "13800000003", elder="张", count=3),
    ]
    results = _sms().send(batch, batch_key="batch-1")

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert [r.key for r in results] == [m.key for m in batch]
    rows = sms_sink.messages()
    assert [r["phone"] for r in rows] == ["13800000001", "13800000002", "13800000003"]
    assert rows[0]["params"] == {"elder": "王奶奶", "what": "跌倒"}
    assert rows[2]["params"] == {"elder": "张", "count": "3"}
    assert {r["out_id"] for r in rows} == {"batch-1"}
    assert {r["sign_name"] for r in rows} == {"探访"}
    assert {r["template_code"] for r in rows} == {"SMS_TF_FAMILY"}
    assert {r.provider_id for r in results} == {rows[0]["biz_id"]}
    assert sms_sink.stats()["requests"] == 1


def test_sms_mixed_template_codes_go_in_one_request_per_code(sms_sink: SmsSink) -> None:
    batch = [sms(1, "13800000011", "SMS_A"), sms(2, "13800000012", "SMS_B")]
    batch.append(sms(3, "13800000013", "SMS_A"))

    results = _sms().send(batch, batch_key="b-mixed")

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert {r["phone"]: r["out_id"] for r in sms_sink.messages()} == {
        "13800000011": "b-mixed:SMS_A",
        "13800000012": "b-mixed:SMS_B",
        "13800000013": "b-mixed:SMS_A",
    }
    assert _sms().lookup(batch, batch_key="b-mixed") == dict.fromkeys([m.key for m in batch], True)


def test_sms_wrong_secret_is_refused_by_the_server_and_fails(
    sms_sink: SmsSink, settings: Any
) -> None:
    settings.SMS_ACCESS_KEY_SECRET = "not-the-secret"
    channels_reset()

    [result] = _sms().send([sms(1, "13800000021")], batch_key="b-bad")

    assert result.outcome == Outcome.FAILED
    assert "SignatureDoesNotMatch" in result.error
    assert sms_sink.messages() == []
    assert sms_sink.stats()["refused"] == 1


def test_sms_unknown_access_key_fails(sms_sink: SmsSink, settings: Any) -> None:
    settings.SMS_ACCESS_KEY_ID = "someone-else"
    channels_reset()

    [result] = _sms().send([sms(1, "13800000022")], batch_key="b-ak")

    assert result.outcome == Outcome.FAILED
    assert "InvalidAccessKeyId.NotFound" in result.error


def test_sms_lookup_finds_a_sent_batch_and_not_an_unknown_one(sms_sink: SmsSink) -> None:
    batch = [sms(1, "13800000031"), sms(2, "13800000032")]
    _sms().send(batch, batch_key="b-sent")

    assert _sms().lookup(batch, batch_key="b-sent") == {m.key: True for m in batch}
    assert _sms().lookup(batch, batch_key="b-never") == {m.key: False for m in batch}
    sms_sink.stop()
    assert _sms().lookup(batch, batch_key="b-sent") == {m.key: None for m in batch}


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ({"code": "isv.BUSINESS_LIMIT_CONTROL"}, Outcome.RATE_LIMITED),
        ({"code": "Throttling.User", "http_status": 400}, Outcome.RATE_LIMITED),
        ({"code": "isv.MOBILE_NUMBER_ILLEGAL"}, Outcome.FAILED),
        ({"code": "isv.SMS_TEMPLATE_ILLEGAL"}, Outcome.FAILED),
        ({"code": "ServiceUnavailable", "http_status": 503}, Outcome.RETRY),
        ({"code": "InternalError", "http_status": 500}, Outcome.RETRY),
        ({"drop": True}, Outcome.RETRY),
    ],
)
def test_sms_provider_errors_map_to_outcomes(
    sms_sink: SmsSink, fault: dict[str, Any], outcome: Outcome
) -> None:
    sms_sink.add_fault(fail_next=1, action="SendBatchSms", **fault)

    results = _sms().send([sms(1, "13800000041"), sms(2, "13800000042")], batch_key="b-f")

    assert [r.outcome for r in results] == [outcome, outcome]
    assert sms_sink.messages() == []


def test_sms_answer_lost_after_acceptance_is_found_not_resent(sms_sink: SmsSink) -> None:
    sms_sink.add_fault(fail_next=1, action="SendBatchSms", drop=True, record=True)

    [result] = _sms().send([sms(1, "13800000051")], batch_key="b-lost")

    assert result.outcome == Outcome.SENT
    assert len(sms_sink.messages(phone="13800000051")) == 1


def test_sms_not_a_number_fails_alone_without_sinking_the_batch(sms_sink: SmsSink) -> None:
    batch = [sms(1, "not a phone"), sms(2, "13800000061"), sms(3, "13800000062", code="")]

    results = _sms().send(batch, batch_key="b-mixed-ok")

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT, Outcome.FAILED]
    assert [r["phone"] for r in sms_sink.messages()] == ["13800000061"]


def test_sms_server_gone_means_retry(sms_sink: SmsSink) -> None:
    sms_sink.stop()

    [result] = _sms().send([sms(1, "13800000071")], batch_key="b-gone")

    assert result.outcome == Outcome.RETRY


# -- the SMS server's own checks ---------------------------------------------------------------
def _signed_request(sink: SmsSink, body: bytes, *, secret: str = SECRET) -> dict[str, str]:
    headers = {
        "host": sink.endpoint,
        "content-type": "application/x-www-form-urlencoded",
        "x-acs-action": "SendBatchSms",
        "x-acs-version": "2017-05-25",
        "x-acs-date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    signed = sorted(headers)
    view = HeaderMap()
    for name, value in headers.items():
        view[name] = value
    to_sign = string_to_sign(
        "POST", "/", "TemplateCode=SMS_X&OutId=raw", view, signed, headers["x-acs-content-sha256"]
    )
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    return headers


def _post(sink: SmsSink, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(sink.host, sink.port, timeout=5)
    try:
        connection.request("POST", "/?TemplateCode=SMS_X&OutId=raw", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_sms_server_refuses_replays_tampering_and_unsigned_requests(sms_sink: SmsSink) -> None:
    body = b"PhoneNumberJson=%5B%2213800000081%22%5D&SignNameJson=%5B%22x%22%5D"
    headers = _signed_request(sms_sink, body)

    assert _post(sms_sink, headers, body)[1]["Code"] == "OK"
    status, answer = _post(sms_sink, headers, body)
    assert (status, answer["Code"]) == (400, "SignatureNonceUsed")
    fresh = _signed_request(sms_sink, body)
    status, answer = _post(sms_sink, fresh, body.replace(b"81", b"82"))
    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")
    status, answer = _post(sms_sink, _signed_request(sms_sink, body, secret="guess"), body)
    assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")
    unsigned = {k: v for k, v in _signed_request(sms_sink, body).items() if k != "Authorization"}
    assert _post(sms_sink, unsigned, body)[1]["Code"] == "IncompleteSignature"
    stale = _signed_request(sms_sink, body)
    stale["x-acs-date"] = "2020-01-01T00:00:00Z"
    assert _post(sms_sink, stale, body)[1]["Code"] == "InvalidTimeStamp.Expired"
    assert [r["phone"] for r in sms_sink.messages()] == ["13800000081"]


def test_sms_server_runs_as_a_process_and_records_to_a_file(tmp_path: Any, settings: Any) -> None:
    record = tmp_path / "sms.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tanfang.notifications.sinks.sms_server",
            "--port",
            "0",
            "--record",
            str(record),
            "--access-key-id",
            AK,
            "--secret",
            SECRET,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip().split("=", 1)[1]
        settings.SMS_ENDPOINT, settings.SMS_PROTOCOL = endpoint, "http"
        settings.SMS_ACCESS_KEY_ID, settings.SMS_ACCESS_KEY_SECRET = AK, SECRET
        channels_reset()
        batch = [sms(i, f"139000000{i:02d}", seq=i) for i in range(10)]
        assert {r.outcome for r in _sms().send(batch, batch_key="b-proc")} == {Outcome.SENT}
        host, port = endpoint.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", "/_sink/messages?out_id=b-proc&limit=0")
        assert json.loads(connection.getresponse().read())["count"] == 10
        connection.close()
        lines = record.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["params"]["seq"] for line in lines] == [str(i) for i in range(10)]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        channels_reset()


# -- WeCom ---------------------------------------------------------------------------------------
@pytest.fixture
def wecom_sink(settings: Any) -> Iterator[WeComSink]:
    sink = WeComSink.start(keys={"robot-1", "robot-2"})
    settings.WECOM_URL = sink.url
    settings.WECOM_ENABLED = True
    channels_reset()
    yield sink
    sink.stop()
    channels_reset()


def robot(n: int, key: str, body: str = "【探访】紧急:王奶奶可能跌倒,请立即联系。") -> Outgoing:
    return Outgoing(message_id=n, key=f"w-{n}", address=key, body=body)


def test_wecom_posts_the_text_to_the_group_robot(wecom_sink: WeComSink) -> None:
    channel = channel_for("wecom")
    assert channel is not None

    results = channel.send([robot(1, "robot-1"), robot(2, "robot-2", "第二条")], batch_key="w")

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert [(m["key"], m["content"]) for m in wecom_sink.messages()] == [
        ("robot-1", "【探访】紧急:王奶奶可能跌倒,请立即联系。"),
        ("robot-2", "第二条"),
    ]
    assert channel.lookup([robot(1, "robot-1")], batch_key="w") == {"w-1": None}


def test_wecom_frequency_limit_bad_key_and_outage(wecom_sink: WeComSink) -> None:
    channel = channel_for("wecom")
    assert channel is not None
    wecom_sink.add_fault(fail_next=1, errcode=45009)
    assert channel.send([robot(1, "robot-1")], batch_key="w")[0].outcome == Outcome.RATE_LIMITED
    assert channel.send([robot(2, "unknown")], batch_key="w")[0].outcome == Outcome.FAILED
    wecom_sink.add_fault(fail_next=1, errcode=-1, http_status=502)
    assert channel.send([robot(3, "robot-1")], batch_key="w")[0].outcome == Outcome.RETRY
    assert wecom_sink.messages() == []


def test_wecom_keeps_each_robot_under_its_minute_limit(wecom_sink: WeComSink) -> None:
    from tanfang.notifications.channels.wecom import WeComRobot

    channel = WeComRobot(url=wecom_sink.url, per_robot_per_minute=2)
    batch = [robot(i, "robot-1") for i in range(3)] + [robot(9, "robot-2")]

    outcomes = [r.outcome for r in channel.send(batch, batch_key="w")]

    assert outcomes == [Outcome.SENT, Outcome.SENT, Outcome.RATE_LIMITED, Outcome.SENT]
    assert len(wecom_sink.messages(key="robot-1")) == 2


# -- e-mail ----------------------------------------------------------------------------------------
@pytest.fixture
def smtp_sink(settings: Any) -> Iterator[SmtpSink]:
    sink = SmtpSink.start()
    settings.SMTP_HOST, settings.SMTP_PORT = sink.host, sink.port
    settings.SMTP_FROM = "tanfang@example.org"
    channels_reset()
    yield sink
    sink.stop()
    channels_reset()


def mail(n: int, to: str, body: str, subject: str = "") -> Outgoing:
    return Outgoing(message_id=n, key=f"mail-{n}", address=to, body=body, subject=subject)


def test_email_delivers_chinese_text_with_a_message_id_from_the_key(smtp_sink: SmtpSink) -> None:
    channel = channel_for("email")
    assert channel is not None
    body = "【探访】王奶奶今天的探访发现:需要助餐服务。\n详情请登录查看。"

    results = channel.send(
        [mail(1, "son@example.org", body), mail(2, "daughter@example.org", "第二封", "主题二")],
        batch_key="m",
    )

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    first, second = smtp_sink.messages()
    assert first["rcpt_to"] == ["son@example.org"]
    assert first["subject"] == "【探访】王奶奶今天的探访发现:需要助餐服务。"
    assert first["body"].strip() == body
    assert first["message_id"] == message_id("mail-1") == results[0].provider_id
    assert first["from"] == "tanfang@example.org"
    assert (second["subject"], second["body"].strip()) == ("主题二", "第二封")
    assert channel.lookup([mail(1, "son@example.org", body)], batch_key="m") == {"mail-1": None}


def test_email_refused_recipients_fail_or_retry_by_reply_code(smtp_sink: SmtpSink) -> None:
    channel = channel_for("email")
    assert channel is not None
    smtp_sink.reject("gone@example.org", 550)
    smtp_sink.reject("busy@example.org", 451)

    results = channel.send(
        [
            mail(1, "gone@example.org", "一"),
            mail(2, "busy@example.org", "二"),
            mail(3, "fine@example.org", "三"),
        ],
        batch_key="m",
    )

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.RETRY, Outcome.SENT]
    assert "550" in results[0].error and "451" in results[1].error
    assert [m["rcpt_to"] for m in smtp_sink.messages()] == [["fine@example.org"]]


def test_email_server_down_means_retry(smtp_sink: SmtpSink) -> None:
    channel = channel_for("email")
    assert channel is not None
    smtp_sink.stop()

    [result] = channel.send([mail(1, "son@example.org", "一")], batch_key="m")

    assert result.outcome == Outcome.RETRY


# -- inbox and the registry -------------------------------------------------------------------
def test_inbox_delivers_at_once_and_always_finds_its_rows() -> None:
    channel = channel_for("inbox")
    assert channel is not None
    batch = [Outgoing(message_id=7, key="i-7", address="12", body="您有一条新消息")]

    [result] = channel.send(batch, batch_key="i")

    assert (result.key, result.outcome, result.provider_id) == ("i-7", Outcome.DELIVERED, "7")
    assert channel.lookup(batch, batch_key="i") == {"i-7": True}


def test_channels_not_configured_are_none_and_instances_are_kept(settings: Any) -> None:
    settings.SMS_ENDPOINT, settings.WECOM_ENABLED, settings.SMTP_HOST = "", False, ""
    channels_reset()
    assert [channel_for(n) for n in ("sms", "wecom", "email", "fax")] == [None] * 4
    assert channel_for("inbox") is channel_for("inbox")

    settings.SMS_ENDPOINT = "127.0.0.1:9"
    assert channel_for("sms") is None  # cached until reset
    channels_reset()
    sms_channel = channel_for("sms")
    assert sms_channel is not None and sms_channel.max_batch == 100
    channels_reset()


def test_sinks_command_prints_the_settings_that_use_the_sinks() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tanfang.cli",
            "sinks",
            "--sms-port",
            "0",
            "--wecom-port",
            "0",
            "--smtp-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd(), "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    try:
        assert process.stdout is not None
        lines = dict(process.stdout.readline().strip().split("=", 1) for _ in range(8))
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert lines["TANFANG_SMS_PROTOCOL"] == "http"
    assert lines["TANFANG_WECOM_URL"].endswith("/cgi-bin/webhook/send")
    assert lines["TANFANG_WECOM_ENABLED"] == "true"
    assert int(lines["TANFANG_SMTP_PORT"]) > 0
