"""A local WeCom group-robot webhook: ``POST /cgi-bin/webhook/send?key=<robot key>``.

It checks what WeCom checks: a known key (``keys``; None accepts any non-empty key, as the
demo's groups have keys the sink cannot know), a JSON body ``{"msgtype": "text", "text":
{"content": "..."}}`` with content of 1 to 2,048 bytes, and at most ``per_minute`` posts per
key in any minute (errcode 45009). It answers ``{"errcode": 0, "errmsg": "ok"}`` or WeCom's
error codes (93000 invalid key, 40008 invalid message type, 44004 empty content, 45009).

Test hooks: ``GET /_sink/messages?key=``, ``POST /_sink/faults`` with ``{"fail_next": n,
"errcode": 45009, "http_status": 200, "delay_ms": 0}``, ``POST /_sink/reset``.

Run alone: ``python -m tanfang.notifications.sinks.wecom_server --port 8702``.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from tanfang.notifications.sinks import (
    ServerThread,
    SinkHandler,
    SinkHTTPServer,
    json_body,
    query_params,
)

WEBHOOK_PATH = "/cgi-bin/webhook/send"
# The robot key of the demo city's WeCom group (tanfang/demo/accounts.py): published, like
# the SMS sink's demo access key.
DEMO_WECOM_KEY = "tanfang-demo-wecom"
ERRMSG = {
    0: "ok",
    93000: "invalid webhook url",
    40008: "invalid message type",
    44004: "empty content",
    45009: "api freq out of limit",
    -1: "system busy",
}


@dataclass
class WeComFault:
    remaining: int
    errcode: int
    http_status: int = 200
    delay_ms: int = 0


class WeComSink:
    def __init__(self, *, keys: set[str] | None = None, per_minute: int = 20) -> None:
        self.keys = keys
        self.per_minute = per_minute
        self.lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._window: dict[str, collections.deque[float]] = {}
        self._faults: list[WeComFault] = []
        self._thread: ServerThread | None = None

    @classmethod
    def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        keys: set[str] | None = None,
        per_minute: int = 20,
    ) -> WeComSink:
        sink = cls(keys=keys, per_minute=per_minute)
        server = SinkHTTPServer((host, port), _Handler)
        server.sink = sink  # type: ignore[attr-defined]
        sink._thread = ServerThread(server)
        return sink

    @property
    def port(self) -> int:
        assert self._thread is not None
        return self._thread.port

    @property
    def url(self) -> str:
        assert self._thread is not None
        return f"http://{self._thread.host}:{self.port}{WEBHOOK_PATH}"

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def messages(self, *, key: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self._records if not key or r["key"] == key]

    def add_fault(self, **spec: Any) -> None:
        with self.lock:
            self._faults.append(
                WeComFault(
                    remaining=int(spec.get("fail_next", 1)),
                    errcode=int(spec.get("errcode", 45009)),
                    http_status=int(spec.get("http_status", 200)),
                    delay_ms=int(spec.get("delay_ms", 0)),
                )
            )

    def reset(self) -> None:
        with self.lock:
            self._records.clear()
            self._window.clear()
            self._faults.clear()

    def _take_fault(self) -> WeComFault | None:
        with self.lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.pop(0)
            return fault

    def post(self, key: str, body: bytes) -> tuple[int, int]:
        """One webhook post: (HTTP status, errcode)."""
        fault = self._take_fault()
        if fault is not None:
            if fault.delay_ms:
                time.sleep(fault.delay_ms / 1000)
            return fault.http_status, fault.errcode
        if not key or (self.keys is not None and key not in self.keys):
            return 200, 93000
        payload = json_body(body)
        if not isinstance(payload, dict) or payload.get("msgtype") != "text":
            return 200, 40008
        text = payload.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content.strip():
            return 200, 44004
        if len(content.encode("utf-8")) > 2048:
            return 200, 40058
        now = time.monotonic()
        with self.lock:
            stamps = self._window.setdefault(key, collections.deque())
            while stamps and stamps[0] <= now - 60:
                stamps.popleft()
            if self.per_minute and len(stamps) >= self.per_minute:
                return 200, 45009
            stamps.append(now)
            self._records.append(
                {
                    "key": key,
                    "msgtype": "text",
                    "content": content,
                    "time": dt.datetime.now(dt.UTC).isoformat(),
                }
            )
        return 200, 0


class _Handler(SinkHandler):
    def handle_request(
        self, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        sink: WeComSink = self.server.sink  # type: ignore[attr-defined]
        q = query_params(query)
        if path == WEBHOOK_PATH and method == "POST":
            status, code = sink.post(q.get("key", ""), body)
            return status, {"errcode": code, "errmsg": ERRMSG.get(code, "error")}, {}
        if path == "/_sink/messages" and method == "GET":
            rows = sink.messages(key=q.get("key", ""))
            return 200, {"count": len(rows), "messages": rows}, {}
        if path == "/_sink/faults" and method == "POST":
            spec = json_body(body)
            if not isinstance(spec, dict):
                return 400, {"error": "a JSON object"}, {}
            sink.add_fault(**spec)
            return 200, {"ok": True}, {}
        if path == "/_sink/reset" and method == "POST":
            sink.reset()
            return 200, {"ok": True}, {}
        return 404, {"errcode": 404, "errmsg": "not found"}, {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local WeCom group-robot webhook.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--keys", default="", help="comma-separated robot keys (empty: any)")
    parser.add_argument("--per-minute", type=int, default=20)
    args = parser.parse_args(argv)
    keys = {k for k in args.keys.split(",") if k} or None
    sink = WeComSink.start(args.host, args.port, keys=keys, per_minute=args.per_minute)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"TANFANG_WECOM_URL={sink.url}", flush=True)
    print("TANFANG_WECOM_ENABLED=true", flush=True)
    stop.wait()
    sink.stop()


if __name__ == "__main__":
    main()
