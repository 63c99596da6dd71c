"""A local SMTP server (aiosmtpd) that records every message it accepts.

Each accepted message is parsed (``email`` with the default policy, so encoded Chinese
subjects and bodies come back as text) and kept with its envelope and ``Message-ID``.
``reject(address, code)`` makes the server refuse a recipient at ``RCPT TO`` with a
permanent 550 or a transient 451 (``times``: only the next n attempts; None: until reset).

Run alone: ``python -m tanfang.notifications.sinks.smtp_server --port 8725``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import socket
import threading
from email import policy
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller

REPLIES = {
    550: "550 5.1.1 Mailbox unavailable",
    451: "451 4.3.0 Try again later",
    452: "452 4.2.2 Mailbox full",
    554: "554 5.7.1 Rejected",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SmtpSink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._rejects: dict[str, list[Any]] = {}
        self._controller: Controller | None = None
        self.host = ""
        self.port = 0

    @classmethod
    def start(cls, host: str = "127.0.0.1", port: int = 0) -> SmtpSink:
        sink = cls()
        sink.host, sink.port = host, port or free_port(host)
        controller = Controller(_Handler(sink), hostname=host, port=sink.port)
        controller.start()
        sink._controller = controller
        return sink

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def reject(self, address: str, code: int = 550, times: int | None = None) -> None:
        with self.lock:
            self._rejects[address.lower()] = [code, times]

    def reset(self) -> None:
        with self.lock:
            self._records.clear()
            self._rejects.clear()

    def messages(self, *, to: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self._records if not to or to.lower() in r["rcpt_to"]]

    def rejection(self, address: str) -> str | None:
        with self.lock:
            entry = self._rejects.get(address.lower())
            if entry is None:
                return None
            code, times = entry
            if times is not None:
                entry[1] = times - 1
                if entry[1] <= 0:
                    del self._rejects[address.lower()]
            return REPLIES.get(code, f"{code} Rejected")

    def record(self, mail_from: str, rcpt_to: list[str], content: bytes) -> None:
        message = BytesParser(policy=policy.default).parsebytes(content)
        body = message.get_body(preferencelist=("plain",))
        with self.lock:
            self._records.append(
                {
                    "mail_from": mail_from,
                    "rcpt_to": [r.lower() for r in rcpt_to],
                    "from": str(message["From"] or ""),
                    "to": str(message["To"] or ""),
                    "subject": str(message["Subject"] or ""),
                    "message_id": str(message["Message-ID"] or ""),
                    "body": body.get_content().replace("\r\n", "\n") if body is not None else "",
                    "time": dt.datetime.now(dt.UTC).isoformat(),
                }
            )


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refused = self.sink.rejection(address)
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sink.record(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local SMTP server that records messages.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sink = SmtpSink.start(args.host, args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"TANFANG_SMTP_HOST={sink.host}", flush=True)
    print(f"TANFANG_SMTP_PORT={sink.port}", flush=True)
    stop.wait()
    sink.stop()


if __name__ == "__main__":
    main()
