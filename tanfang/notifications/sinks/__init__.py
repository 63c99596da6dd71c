"""Local stand-ins for the message providers, for tests, the demo and the benchmarks.

``sms_server`` answers Alibaba Cloud's SMS API (and checks its ACS3-HMAC-SHA256 signature),
``wecom_server`` a WeCom group robot's webhook, ``smtp_server`` SMTP. Each records what it
accepted, can be told to fail on purpose, and runs in a thread (tests) or as its own process
(``tanfang sinks``, ``python -m tanfang.notifications.sinks.sms_server``).

This module holds the small HTTP base the two HTTP sinks share: a threading server with
keep-alive whose every response goes out in ONE socket write (headers and body together;
a response split over two writes meets the client's delayed ACK and stalls ~40 ms).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class SinkHTTPServer(ThreadingHTTPServer):
    """Keeps its open connections, so that stopping the sink also ends keep-alive clients."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class SinkHandler(BaseHTTPRequestHandler):
    """Reads a request, hands it to ``handle_request``, writes the answer in one write."""

    protocol_version = "HTTP/1.1"
    server_version = "TanfangSink/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        try:
            status, payload, extra = self.handle_request(
                self.command, parts.path, parts.query, body
            )
        except (ValueError, KeyError, TypeError) as exc:  # a malformed request: say so, go on
            status, payload, extra = 500, {"Code": "InternalError", "Message": str(exc)}, {}
        self.respond(status, payload, extra)

    def handle_request(
        self, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def respond(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        head = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json;charset=utf-8",
            f"Content-Length: {len(data)}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if self.close_connection:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        self.wfile.flush()


def query_params(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError:
        return None


class ServerThread:
    """A sink server running in a daemon thread; ``stop()`` shuts it down."""

    def __init__(self, server: SinkHTTPServer) -> None:
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        self.thread.join(timeout=5)
