"""SMS through Alibaba Cloud's SMS API (dysmsapi 2017-05-25), with Alibaba's official SDK.

One ``send`` is one ``SendBatchSms`` request per SMS template code in the batch (up to 100
numbers, one ``OutId``, per-number template parameters): the channel groups a batch by
template code itself, so the caller need not. With one code the ``OutId`` is the batch key;
with several, each request's ``OutId`` is ``<batch key>:<template code>``.

Alibaba accepts or refuses a ``SendBatchSms`` request as a whole, so every message of one
request gets the same outcome:

- ``Code`` "OK": SENT, the request's ``BizId`` as provider id;
- throttling (``isv.BUSINESS_LIMIT_CONTROL``, ``isv.DAY_LIMIT_CONTROL``, ``Throttling*``):
  RATE_LIMITED;
- refusals no retry can mend (bad number, template, sign name, parameters, account, key or
  signature): FAILED, so the outbox falls back to the next channel. A number that is plainly
  not a phone number is failed before the request, so it cannot sink its neighbours;
- connection refused or timed out while connecting: RETRY (nothing reached the provider);
- any other transport error or a 5xx, after which the provider may have accepted the request:
  the channel looks the request up at once (below) and answers SENT if it is there, RETRY if
  the provider says it is not, and RETRY with "in doubt" when the lookup fails too.

``lookup`` asks ``QuerySendDetails`` (a phone number and a send day) for one number of each
request, on today's and yesterday's date in Asia/Shanghai, paging through the day's records
for one whose ``OutId`` is the request's: found True, answered without it False, the query
failed None. Alibaba shows a sent message there within seconds, not at once: the outbox
looks an in-doubt message up only after its lease ran out.

The SDK client is built per thread (its credential and request state are not documented as
thread-safe); the SDK's own retries are off, the outbox retries.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import zoneinfo
from collections.abc import Iterable
from typing import Any

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import utils_models as open_api_models
from darabonba.runtime import RuntimeOptions

from tanfang.notifications.channels.base import Outcome, Outgoing, SendResult

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
CONNECT_TIMEOUT_MS = 3000
READ_TIMEOUT_MS = 5000
QUERY_PAGE_SIZE = 50
QUERY_MAX_PAGES = 20

THROTTLED = {
    "isv.BUSINESS_LIMIT_CONTROL",
    "isv.DAY_LIMIT_CONTROL",
    "isv.MINUTE_LIMIT_CONTROL",
    "isv.HOUR_LIMIT_CONTROL",
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "Throttling.System",
    "ServiceUnavailable.Throttling",
}
# Errors a retry may mend (a clock off by minutes, a replayed nonce, the service busy).
TRANSIENT = {
    "InvalidTimeStamp.Expired",
    "SignatureNonceUsed",
    "ServiceUnavailable",
    "InternalError",
    "isp.SYSTEM_ERROR",
}
_CONNECT_ERRORS = ("NewConnectionError", "Connection refused", "ConnectTimeout", "connect timeout")
_MAINLAND = re.compile(r"^(?:\+86|0086|86)?(1[3-9]\d{9})$")
_INTERNATIONAL = re.compile(r"^(?:\+|00)([1-9]\d{7,14})$")


def normalise_phone(text: str) -> str:
    """The number as Alibaba takes it (11 digits in the mainland), or "" when not a number."""
    compact = re.sub(r"[\s\-()]", "", text)
    if match := _MAINLAND.match(compact):
        return match.group(1)
    if match := _INTERNATIONAL.match(compact):
        return match.group(1)
    return ""


def _error_code(exc: BaseException) -> tuple[str, int | None]:
    return str(getattr(exc, "code", "") or ""), getattr(exc, "status_code", None)


def classify(code: str, status: int | None) -> Outcome:
    """The outcome of an answer with error ``code`` (HTTP ``status``; None: no HTTP answer)."""
    if code in THROTTLED or code.startswith("Throttling"):
        return Outcome.RATE_LIMITED
    if code in TRANSIENT or (status is not None and status >= 500):
        return Outcome.RETRY
    return Outcome.FAILED


class AliyunSms:
    """The SMS channel (``ChannelBackend``)."""

    name = "sms"
    max_batch = 100

    def __init__(
        self,
        *,
        endpoint: str,
        protocol: str,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        rate: float,
    ) -> None:
        self.endpoint = endpoint
        self.protocol = protocol
        self.sign_name = sign_name
        self.rate_per_second = float(rate)
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._local = threading.local()
        self._runtime = RuntimeOptions(
            autoretry=False,
            connect_timeout=CONNECT_TIMEOUT_MS,
            read_timeout=READ_TIMEOUT_MS,
        )

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            config = open_api_models.Config(
                access_key_id=self._access_key_id,
                access_key_secret=self._access_key_secret,
                endpoint=self.endpoint,
                protocol=self.protocol,
                connect_timeout=CONNECT_TIMEOUT_MS,
                read_timeout=READ_TIMEOUT_MS,
            )
            client = Client(config)
            self._local.client = client
        return client

    # -- sending ------------------------------------------------------------------------
    def send(self, batch: list[Outgoing], *, batch_key: str) -> list[SendResult]:
        results: dict[str, SendResult] = {}
        groups = self._groups(batch, results)
        for code, items in groups.items():
            out_id = batch_key if len(groups) == 1 else f"{batch_key}:{code}"
            for result in self._send_group(code, items, out_id=out_id):
                results[result.key] = result
        return [results[m.key] for m in batch]

    def _groups(
        self, batch: list[Outgoing], results: dict[str, SendResult]
    ) -> dict[str, list[tuple[Outgoing, str]]]:
        """Messages by template code, with their numbers; unsendable ones failed at once."""
        groups: dict[str, list[tuple[Outgoing, str]]] = {}
        for message in batch:
            phone = normalise_phone(message.address)
            if not phone:
                results[message.key] = SendResult(
                    message.key, Outcome.FAILED, error="not a phone number"
                )
            elif not message.sms_template_code:
                results[message.key] = SendResult(
                    message.key, Outcome.FAILED, error="no SMS template code"
                )
            else:
                groups.setdefault(message.sms_template_code, []).append((message, phone))
        return groups

    def _send_group(
        self, code: str, items: list[tuple[Outgoing, str]], *, out_id: str
    ) -> list[SendResult]:
        request = sms_models.SendBatchSmsRequest(
            phone_number_json=json.dumps([phone for _, phone in items]),
            sign_name_json=json.dumps([self.sign_name] * len(items), ensure_ascii=False),
            template_code=code,
            template_param_json=json.dumps(
                [{k: str(v) for k, v in m.sms_params.items()} for m, _ in items],
                ensure_ascii=False,
            ),
            out_id=out_id,
        )
        keys = [m.key for m, _ in items]
        try:
            response = self._client().send_batch_sms_with_options(request, self._runtime)
        except Exception as exc:  # the SDK raises its own and the transport's errors
            return self._after_error(exc, items, out_id=out_id)
        body = response.body
        if body is not None and body.code == "OK":
            return [SendResult(k, Outcome.SENT, provider_id=body.biz_id or "") for k in keys]
        code_text = (body.code or "") if body is not None else ""
        error = f"{code_text}: {body.message if body is not None else ''}"[:300]
        outcome = classify(code_text, response.status_code)
        return [SendResult(k, outcome, error=error) for k in keys]

    def _after_error(
        self, exc: Exception, items: list[tuple[Outgoing, str]], *, out_id: str
    ) -> list[SendResult]:
        keys = [m.key for m, _ in items]
        code, status = _error_code(exc)
        text = str(exc)
        error = f"{code or type(exc).__name__}: {text}"[:300]
        ambiguous = (status is None and not any(s in text for s in _CONNECT_ERRORS)) or (
            status is not None and status >= 500
        )
        if not ambiguous:
            outcome = classify(code, status) if status is not None else Outcome.RETRY
            return [SendResult(k, outcome, error=error) for k in keys]
        found = self._find(items[0][1], {out_id})
        if found is True:
            return [SendResult(k, Outcome.SENT, error="found after: " + error) for k in keys]
        doubt = "" if found is False else "in doubt: "
        return [SendResult(k, Outcome.RETRY, error=(doubt + error)[:300]) for k in keys]

    # -- looking up -----------------------------------------------------------------------
    def lookup(self, batch: list[Outgoing], *, batch_key: str) -> dict[str, bool | None]:
        answers: dict[str, bool | None] = {}
        groups = self._groups(batch, {})
        for message in batch:
            if message.key not in {m.key for items in groups.values() for m, _ in items}:
                answers[message.key] = False  # never sendable: nothing went out
        for code, items in groups.items():
            found = self._find(items[0][1], {batch_key, f"{batch_key}:{code}"})
            for message, _ in items:
                answers[message.key] = found
        return answers

    def receipts(self, sent: list[tuple[str, str, str, dt.date]]) -> dict[str, str | None]:
        """The carrier's report of sent messages: ``(key, phone, batch_key, day)`` ->
        ``"delivered"``, ``"failed:<ErrCode>"``, or None (still waiting, or the provider
        cannot say now). One ``QuerySendDetails`` (paged) per number and day."""
        answers: dict[str, str | None] = {}
        by_number: dict[tuple[str, dt.date], list[tuple[str, str]]] = {}
        for key, address, batch_key, day in sent:
            phone = normalise_phone(address)
            if not phone:
                answers[key] = None
                continue
            by_number.setdefault((phone, day), []).append((key, batch_key))
        for (phone, day), wanted in by_number.items():
            try:
                dtos = list(self._details(phone, day))
            except Exception:  # the SDK's and the transport's errors alike: ask again later
                dtos = None
            for key, batch_key in wanted:
                answers[key] = None
                for dto in dtos or []:
                    if dto.out_id == batch_key or str(dto.out_id or "").startswith(batch_key + ":"):
                        if dto.send_status == 3:
                            answers[key] = "delivered"
                        elif dto.send_status == 2:
                            answers[key] = f"failed:{dto.err_code or ''}"
        return answers

    def _find(self, phone: str, out_ids: set[str]) -> bool | None:
        today = dt.datetime.now(SHANGHAI).date()
        try:
            for day in (today, today - dt.timedelta(days=1)):
                if any(dto.out_id in out_ids for dto in self._details(phone, day)):
                    return True
        except Exception:  # the SDK's and the transport's errors alike: cannot say
            return None
        return False

    def _details(self, phone: str, day: dt.date) -> Iterable[Any]:
        for page in range(1, QUERY_MAX_PAGES + 1):
            request = sms_models.QuerySendDetailsRequest(
                phone_number=phone,
                send_date=day.strftime("%Y%m%d"),
                page_size=QUERY_PAGE_SIZE,
                current_page=page,
            )
            body = self._client().query_send_details_with_options(request, self._runtime).body
            if body is None or body.code != "OK":
                raise LookupError(body.code if body is not None else "no answer")
            dtos = (
                body.sms_send_detail_dtos.sms_send_detail_dto if body.sms_send_detail_dtos else []
            )
            yield from dtos or []
            if page * QUERY_PAGE_SIZE >= int(body.total_count or 0):
                return
