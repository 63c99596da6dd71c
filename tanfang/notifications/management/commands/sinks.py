"""``tanfang sinks``: the local SMS, WeCom and SMTP test servers, in the foreground.

For the demo and the benchmarks: starts the three sinks (``tanfang.notifications.sinks``),
prints the environment variables that point Tanfang at them, and runs until SIGTERM or
Ctrl-C. ``--record DIR`` appends every accepted SMS to ``DIR/sms.jsonl``. The SMS sink's
access key is ``--access-key-id``/``--secret``, else ``TANFANG_SMS_ACCESS_KEY_ID``/``_SECRET``,
else the sink's demo key.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tanfang.notifications.sinks.sms_server import DEMO_ACCESS_KEY_ID, DEMO_SECRET, SmsSink
from tanfang.notifications.sinks.smtp_server import SmtpSink
from tanfang.notifications.sinks.wecom_server import WeComSink


class Command(BaseCommand):
    help = "Run the local SMS, WeCom and SMTP test servers and print the settings that use them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--sms-port", type=int, default=8701)
        parser.add_argument("--wecom-port", type=int, default=8702)
        parser.add_argument("--smtp-port", type=int, default=8725)
        parser.add_argument("--access-key-id", default="")
        parser.add_argument("--secret", default="")
        parser.add_argument("--wecom-per-minute", type=int, default=20)
        parser.add_argument("--record", type=Path, default=None, help="directory for sms.jsonl")

    def handle(self, *args: Any, **options: Any) -> None:
        host = options["host"]
        key_id = options["access_key_id"] or settings.SMS_ACCESS_KEY_ID or DEMO_ACCESS_KEY_ID
        secret = options["secret"] or settings.SMS_ACCESS_KEY_SECRET or DEMO_SECRET
        record = None
        if options["record"] is not None:
            options["record"].mkdir(parents=True, exist_ok=True)
            record = options["record"] / "sms.jsonl"
        sms = SmsSink.start(
            host, options["sms_port"], access_key_id=key_id, secret=secret, record=record
        )
        wecom = WeComSink.start(host, options["wecom_port"], per_minute=options["wecom_per_minute"])
        smtp = SmtpSink.start(host, options["smtp_port"])
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        for line in (
            f"TANFANG_SMS_ENDPOINT={sms.endpoint}",
            "TANFANG_SMS_PROTOCOL=http",
            f"TANFANG_SMS_ACCESS_KEY_ID={key_id}",
            f"TANFANG_SMS_ACCESS_KEY_SECRET={secret}",
            f"TANFANG_WECOM_URL={wecom.url}",
            "TANFANG_WECOM_ENABLED=true",
            f"TANFANG_SMTP_HOST={smtp.host}",
            f"TANFANG_SMTP_PORT={smtp.port}",
        ):
            self.stdout.write(line)
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            sms.stop()
            wecom.stop()
            smtp.stop()
            self.stderr.write(f"sinks stopped: {sms.stats()['messages']} SMS recorded")
