"""A local Alibaba Cloud SMS API (dysmsapi 2017-05-25) that checks signatures and records.

It answers the three RPC actions Tanfang's SMS channel calls through Alibaba's official SDK
(``SendSms``, ``SendBatchSms``, ``QuerySendDetails``), after checking every request's
ACS3-HMAC-SHA256 signature independently of the SDK, by Alibaba's published V3 algorithm
("V3 版本请求体&签名机制"):

1. ``Authorization: ACS3-HMAC-SHA256 Credential=<AK>,SignedHeaders=<h1;h2>,Signature=<hex>``;
   the access key id must be known.
2. The signed headers must include ``host``, every ``x-acs-*`` header sent and
   ``content-type`` when one is sent; ``x-acs-date`` must be within 15 minutes of now;
   ``x-acs-signature-nonce`` must not have been seen before (replays are refused);
   ``x-acs-content-sha256`` must be the hex SHA-256 of the body.
3. CanonicalQueryString: the query parameters decoded, then each name and value
   percent-encoded (RFC 3986: only ``A-Za-z0-9-_.~`` left as is), sorted by name,
   joined as ``name=value`` with ``&``.
4. CanonicalHeaders: for each signed header in sorted order, ``name:value\\n`` with the
   name in lower case and the value trimmed (several values: sorted, joined by commas).
5. CanonicalRequest = method, URI, CanonicalQueryString, CanonicalHeaders, SignedHeaders,
   HashedPayload, joined by newlines; StringToSign = ``ACS3-HMAC-SHA256\\n`` + hex
   SHA-256 of CanonicalRequest; Signature = hex HMAC-SHA256(secret, StringToSign).

A refused request gets Alibaba's error JSON (``Code`` ``IncompleteSignature``,
``SignatureDoesNotMatch``, ``SignatureNonceUsed``, ``InvalidTimeStamp.Expired``: HTTP 400;
``InvalidAccessKeyId.NotFound``: HTTP 404). Accepted messages are kept in memory and, with
``record``, appended to a JSON-lines file another process can count.

Test hooks (no signature needed): ``GET /_sink/messages?phone=&out_id=&limit=``,
``GET /_sink/stats``, ``POST /_sink/faults`` with ``{"fail_next": n, "code": "...",
"http_status": 500, "delay_ms": 0, "record": false, "drop": false, "action": "SendBatchSms"}``
(``record``: keep the messages, then answer with the fault, as when the provider accepted but
the answer was lost; ``drop``: close the connection without an answer),
``POST /_sink/undeliverable`` with a JSON list of numbers (accepted, then reported failed by
``QuerySendDetails``, as for a phone out of service), ``POST /_sink/reset``.

Run alone: ``python -m tanfang.notifications.sinks.sms_server --port 8701 --record FILE``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
import zoneinfo
from dataclasses import dataclass
from email.message import Message as HeaderMap
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from tanfang.notifications.sinks import (
    ServerThread,
    SinkHandler,
    SinkHTTPServer,
    json_body,
    query_params,
)

DEMO_ACCESS_KEY_ID = "tanfang-demo-ak"
DEMO_SECRET = "tanfang-demo-secret"
ALGORITHM = "ACS3-HMAC-SHA256"
MAX_CLOCK_SKEW_S = 15 * 60
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
_PHONE = re.compile(r"^(?:\+?86)?1[3-9]\d{9}$|^(?:00|\+)?[1-9]\d{7,14}$")
_TEMPLATE = re.compile(r"^SMS_[A-Za-z0-9_]+$")
_AUTH = re.compile(r"^ACS3-HMAC-SHA256\s+Credential=([^,]*),SignedHeaders=([^,]*),Signature=(\w+)$")


class SignatureError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _encode(text: str) -> str:
    return quote(text, safe="-_.~", encoding="utf-8")


def canonical_query(query: str) -> str:
    pairs = sorted((_encode(k), _encode(v)) for k, v in parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(headers: HeaderMap, signed: list[str]) -> str:
    lines = []
    for name in signed:
        values = sorted(v.strip() for v in headers.get_all(name, []))
        lines.append(f"{name}:{','.join(values)}\n")
    return "".join(lines)


def string_to_sign(
    method: str, path: str, query: str, headers: HeaderMap, signed: list[str], payload_hash: str
) -> str:
    canonical = "\n".join(
        [
            method,
            path or "/",
            canonical_query(query),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        ]
    )
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def verify_signature(
    *,
    method: str,
    path: str,
    query: str,
    headers: HeaderMap,
    body: bytes,
    secrets: dict[str, str],
    now: float,
) -> tuple[str, str]:
    """Check one request's V3 signature; the (access key id, nonce) on success.

    Raises ``SignatureError`` with Alibaba's error code when the request is refused.
    The caller checks the nonce for replays (it keeps the nonces seen).
    """
    match = _AUTH.match((headers.get("Authorization") or "").strip())
    if match is None:
        raise SignatureError("IncompleteSignature", "The request signature is incomplete.")
    access_key_id, signed_text, signature = match.groups()
    secret = secrets.get(access_key_id)
    if secret is None:
        raise SignatureError(
            "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
        )
    signed = signed_text.split(";")
    present = {name.lower() for name in headers}
    required = {"host", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
    required |= {h for h in present if h.startswith("x-acs-")}
    if "content-type" in present:
        required.add("content-type")
    if signed != sorted(signed) or not required <= set(signed) or not set(signed) <= present:
        raise SignatureError(
            "IncompleteSignature", "SignedHeaders must list host, content-type and x-acs-*."
        )
    payload_hash = headers.get("x-acs-content-sha256") or ""
    if payload_hash != hashlib.sha256(body).hexdigest():
        raise SignatureError(
            "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the request body."
        )
    try:
        stamp = dt.datetime.strptime(
            (headers.get("x-acs-date") or "") + "+0000", "%Y-%m-%dT%H:%M:%SZ%z"
        )
    except ValueError as exc:
        raise SignatureError("InvalidTimeStamp.Format", "x-acs-date is malformed.") from exc
    if abs(stamp.timestamp() - now) > MAX_CLOCK_SKEW_S:
        raise SignatureError("InvalidTimeStamp.Expired", "Specified time stamp has expired.")
    to_sign = string_to_sign(method, path, query, headers, signed, payload_hash)
    expected = hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), signature.lower()):
        raise SignatureError(
            "SignatureDoesNotMatch",
            f"Specified signature does not match our calculation. server StringToSign is "
            f"[{to_sign}]",
        )
    return access_key_id, headers.get("x-acs-signature-nonce") or ""


@dataclass
class Fault:
    remaining: int
    code: str = ""
    http_status: int = 200
    message: str = ""
    delay_ms: int = 0
    record: bool = False
    drop: bool = False
    action: str = ""


class SmsSink:
    """The sink's state: known keys, records, seen nonces and queued faults."""

    def __init__(
        self,
        *,
        access_key_id: str = DEMO_ACCESS_KEY_ID,
        secret: str = DEMO_SECRET,
        record: str | Path | None = None,
    ) -> None:
        self.secrets = {access_key_id: secret}
        self.lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._by_phone: dict[str, list[dict[str, Any]]] = {}
        self._seen: set[tuple[str, str, str]] = set()
        self._nonces: dict[str, float] = {}
        self._faults: list[Fault] = []
        # Numbers the carrier cannot deliver to (switched off, out of service): their
        # messages are accepted, then reported failed by QuerySendDetails (SendStatus 2).
        self.undeliverable: set[str] = set()
        self._biz = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self.counts = {"requests": 0, "refused": 0, "faults": 0, "messages": 0, "duplicates": 0}
        self._file = open(record, "a", encoding="utf-8") if record else None  # noqa: SIM115
        self._thread: ServerThread | None = None

    # -- running ------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_key_id: str = DEMO_ACCESS_KEY_ID,
        secret: str = DEMO_SECRET,
        record: str | Path | None = None,
    ) -> SmsSink:
        sink = cls(access_key_id=access_key_id, secret=secret, record=record)
        server = SinkHTTPServer((host, port), _Handler)
        server.sink = sink  # type: ignore[attr-defined]
        sink._thread = ServerThread(server)
        return sink

    @property
    def port(self) -> int:
        assert self._thread is not None
        return self._thread.port

    @property
    def host(self) -> str:
        assert self._thread is not None
        return self._thread.host

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- inspection and faults ------------------------------------------------------------
    def messages(self, *, phone: str = "", out_id: str = "") -> list[dict[str, Any]]:
        with self.lock:
            rows = self._by_phone.get(phone, []) if phone else self._records
            return [dict(r) for r in rows if not out_id or r["out_id"] == out_id]

    def stats(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def add_fault(self, **spec: Any) -> None:
        fault = Fault(
            remaining=int(spec.get("fail_next", 1)),
            code=str(spec.get("code", "")),
            http_status=int(spec.get("http_status", 200)),
            message=str(spec.get("message", "injected fault")),
            delay_ms=int(spec.get("delay_ms", 0)),
            record=bool(spec.get("record", False)),
            drop=bool(spec.get("drop", False)),
            action=str(spec.get("action", "")),
        )
        with self.lock:
            self._faults.append(fault)

    def reset(self) -> None:
        with self.lock:
            self._records.clear()
            self._by_phone.clear()
            self._seen.clear()
            self._faults.clear()
            self.counts = dict.fromkeys(self.counts, 0)

    # -- the API --------------------------------------------------------------------------
    def take_fault(self, action: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if not fault.action or fault.action == action:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    self.counts["faults"] += 1
                    return fault
        return None

    def check(
        self, method: str, path: str, query: str, headers: HeaderMap, body: bytes
    ) -> SignatureError | None:
        now = time.time()
        try:
            _, nonce = verify_signature(
                method=method,
                path=path,
                query=query,
                headers=headers,
                body=body,
                secrets=self.secrets,
                now=now,
            )
        except SignatureError as exc:
            with self.lock:
                self.counts["refused"] += 1
            return exc
        with self.lock:
            self.counts["requests"] += 1
            if not nonce or nonce in self._nonces:
                self.counts["refused"] += 1
                return SignatureError("SignatureNonceUsed", "Specified signature nonce was used.")
            self._nonces[nonce] = now
            if len(self._nonces) > 100_000:
                cutoff = now - 2 * MAX_CLOCK_SKEW_S
                self._nonces = {n: t for n, t in self._nonces.items() if t > cutoff}
        return None

    def accept(self, rows: list[dict[str, Any]], out_id: str) -> str:
        """Record one accepted request's messages; its BizId."""
        now = dt.datetime.now(dt.UTC)
        with self.lock:
            biz_id = f"{self._prefix}{next(self._biz):010d}^0"
            for row in rows:
                row.update(
                    out_id=out_id,
                    biz_id=biz_id,
                    time=now.isoformat(),
                    send_date=now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
                )
                seen = (
                    row["phone"],
                    row["template_code"],
                    json.dumps(row["params"], sort_keys=True),
                )
                if seen in self._seen:
                    self.counts["duplicates"] += 1
                self._seen.add(seen)
                self._records.append(row)
                self._by_phone.setdefault(row["phone"], []).append(row)
            self.counts["messages"] += len(rows)
            if self._file is not None:
                lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                self._file.write(lines)
                self._file.flush()
        return biz_id

    def details(self, phone: str, send_date: str, biz_id: str) -> list[dict[str, Any]]:
        day = f"{send_date[:4]}-{send_date[4:6]}-{send_date[6:8]}"
        with self.lock:
            rows = list(self._by_phone.get(phone, []))
        return [
            r
            for r in rows
            if r["send_date"].startswith(day) and (not biz_id or r["biz_id"] == biz_id)
        ]


def _error(code: str, message: str, status: int = 200) -> tuple[int, dict[str, Any]]:
    return status, {"RequestId": str(uuid.uuid4()), "Code": code, "Message": message}


def _ok(**fields: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"RequestId": str(uuid.uuid4()), "Code": "OK", "Message": "OK", **fields}


def _json_list(text: str) -> list[Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _validate(phones: list[Any], signs: list[Any], code: str) -> tuple[int, dict[str, Any]] | None:
    if not phones or len(phones) > 100:
        return _error("isv.INVALID_PARAMETERS", "1 to 100 phone numbers per request.")
    if any(not isinstance(p, str) or not _PHONE.match(p) for p in phones):
        return _error("isv.MOBILE_NUMBER_ILLEGAL", "Invalid phone number.")
    if not _TEMPLATE.match(code):
        return _error("isv.SMS_TEMPLATE_ILLEGAL", "The template code is invalid.")
    if len(signs) != len(phones) or any(not isinstance(s, str) or not s.strip() for s in signs):
        return _error("isv.SMS_SIGNATURE_ILLEGAL", "The sign name is invalid.")
    return None


def send_batch(sink: SmsSink, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    phones = _json_list(params.get("PhoneNumberJson", ""))
    signs = _json_list(params.get("SignNameJson", ""))
    values = _json_list(params.get("TemplateParamJson", "[]"))
    code = params.get("TemplateCode", "")
    if phones is None or signs is None or values is None:
        return _error("isv.INVALID_PARAMETERS", "PhoneNumberJson/SignNameJson must be JSON lists.")
    refused = _validate(phones, signs, code)
    if refused:
        return refused
    if values and len(values) != len(phones):
        return _error("isv.INVALID_PARAMETERS", "TemplateParamJson length differs.")
    if any(not isinstance(v, dict) for v in values):
        return _error("isv.INVALID_JSON_PARAM", "TemplateParamJson items must be objects.")
    rows = [
        {
            "phone": phone,
            "sign_name": signs[i],
            "template_code": code,
            "params": values[i] if values else {},
        }
        for i, phone in enumerate(phones)
    ]
    return _ok(BizId=sink.accept(rows, params.get("OutId", "")))


def send_one(sink: SmsSink, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    phones = [p for p in params.get("PhoneNumbers", "").split(",") if p]
    code = params.get("TemplateCode", "")
    refused = _validate(phones, [params.get("SignName", "")] * len(phones), code)
    if refused:
        return refused
    try:
        values = json.loads(params.get("TemplateParam") or "{}")
    except ValueError:
        return _error("isv.INVALID_JSON_PARAM", "TemplateParam is not JSON.")
    rows = [
        {"phone": p, "sign_name": params["SignName"], "template_code": code, "params": values}
        for p in phones
    ]
    return _ok(BizId=sink.accept(rows, params.get("OutId", "")))


def query_details(sink: SmsSink, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    phone, send_date = params.get("PhoneNumber", ""), params.get("SendDate", "")
    try:
        size = int(params.get("PageSize", "0"))
        page = int(params.get("CurrentPage", "0"))
    except ValueError:
        size = page = 0
    if not phone or not re.fullmatch(r"\d{8}", send_date) or not 1 <= size <= 50 or page < 1:
        return _error(
            "isv.INVALID_PARAMETERS", "PhoneNumber, SendDate, PageSize 1-50, CurrentPage."
        )
    rows = sink.details(phone, send_date, params.get("BizId", ""))
    chosen = rows[(page - 1) * size : page * size]
    failed = phone in sink.undeliverable
    dtos = [
        {
            "PhoneNum": r["phone"],
            "SendStatus": 2 if failed else 3,
            "ErrCode": "MOBILE_NOT_ON_SERVICE" if failed else "DELIVERED",
            "TemplateCode": r["template_code"],
            "Content": f"【{r['sign_name']}】{r['template_code']} "
            + json.dumps(r["params"], ensure_ascii=False),
            "SendDate": r["send_date"],
            "ReceiveDate": r["send_date"],
            "OutId": r["out_id"],
        }
        for r in chosen
    ]
    return _ok(TotalCount=len(rows), SmsSendDetailDTOs={"SmsSendDetailDTO": dtos})


ACTIONS = {"SendBatchSms": send_batch, "SendSms": send_one, "QuerySendDetails": query_details}


class _Handler(SinkHandler):
    def handle_request(
        self, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        sink: SmsSink = self.server.sink  # type: ignore[attr-defined]
        if path.startswith("/_sink/"):
            return self._control(sink, method, path, query, body)
        refused = sink.check(method, path, query, self.headers, body)
        if refused is not None:
            status, payload = _error(refused.code, refused.message, refused.status)
            return status, payload, {}
        params = query_params(query)
        if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        action = self.headers.get("x-acs-action") or params.get("Action", "")
        handler = ACTIONS.get(action)
        if handler is None:
            status, payload = _error("InvalidAction.NotFound", f"Unknown action {action!r}.", 404)
            return status, payload, {}
        fault = sink.take_fault(action)
        if fault is not None:
            if fault.delay_ms:
                time.sleep(fault.delay_ms / 1000)
            if fault.record:
                handler(sink, params)
            if fault.drop:
                self.close_connection = True
                raise _Drop
            if fault.code:
                status, payload = _error(fault.code, fault.message, fault.http_status)
                return status, payload, {}
        status, payload = handler(sink, params)
        return status, payload, {}

    def _dispatch(self) -> None:
        try:
            super()._dispatch()
        except _Drop:
            self.close_connection = True

    def _control(
        self, sink: SmsSink, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if path == "/_sink/messages" and method == "GET":
            q = query_params(query)
            rows = sink.messages(phone=q.get("phone", ""), out_id=q.get("out_id", ""))
            limit = int(q.get("limit", "1000"))
            return 200, {"count": len(rows), "messages": rows[:limit]}, {}
        if path == "/_sink/stats" and method == "GET":
            return 200, sink.stats(), {}
        if path == "/_sink/faults" and method == "POST":
            spec = json_body(body)
            if not isinstance(spec, dict):
                return 400, {"error": "a JSON object"}, {}
            sink.add_fault(**spec)
            return 200, {"ok": True}, {}
        if path == "/_sink/undeliverable" and method == "POST":
            phones = json_body(body)
            if not isinstance(phones, list):
                return 400, {"error": "a JSON list of phone numbers"}, {}
            with sink.lock:
                sink.undeliverable.update(str(p) for p in phones)
            return 200, {"ok": True}, {}
        if path == "/_sink/reset" and method == "POST":
            sink.reset()
            return 200, {"ok": True}, {}
        return 404, {"error": "not found"}, {}


class _Drop(Exception):
    pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--access-key-id",
        default=os.environ.get("TANFANG_SMS_ACCESS_KEY_ID") or DEMO_ACCESS_KEY_ID,
    )
    parser.add_argument(
        "--secret", default=os.environ.get("TANFANG_SMS_ACCESS_KEY_SECRET") or DEMO_SECRET
    )
    parser.add_argument("--record", help="append accepted messages to this JSON-lines file")
    args = parser.parse_args(argv)
    sink = SmsSink.start(
        args.host,
        args.port,
        access_key_id=args.access_key_id,
        secret=args.secret,
        record=args.record,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"TANFANG_SMS_ENDPOINT={sink.endpoint}", flush=True)
    print("TANFANG_SMS_PROTOCOL=http", flush=True)
    stop.wait()
    sink.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
