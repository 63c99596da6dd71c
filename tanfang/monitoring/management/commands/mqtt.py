"""``tanfang mqtt``: subscribe to meter readings and device events (docs/monitoring-mqtt.md).

Runs until SIGTERM or SIGINT, then ingests what it has spooled and disconnects (the broker
keeps the sessions, and what arrives meanwhile, for ``--session-expiry`` seconds). Several
processes split the load with ``--share GROUP``, each with its own ``--client-id``.
``--drain`` ingests what an earlier run left in the spool and exits without connecting.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tanfang.monitoring.mqtt import (
    Subscriber,
    default_client_id,
    options_from,
    shutdown_on_signals,
)
from tanfang.monitoring.mqtt_messages import DEFAULT_PREFIX
from tanfang.monitoring.mqtt_receiver import MAX_RECEIVE_MAXIMUM, MAX_SESSION_EXPIRY
from tanfang.monitoring.mqtt_spool import SpoolBusy


def _positive(kind: type, name: str, low: float, high: float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise CommandError(f"{name}: not a number: {text!r}", returncode=2) from None
        if not low <= value <= high:
            raise CommandError(f"{name}: {value} is not between {low} and {high}", returncode=2)
        return value

    return parse


class Command(BaseCommand):
    help = "Subscribe to meter readings and device events on the MQTT broker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", help="broker, mqtt://[user:password@]host[:port] (default: TANFANG_MQTT_URL)"
        )
        parser.add_argument(
            "--client-id",
            default=default_client_id(),
            help="fixed client id: the broker keeps this session's messages while we are "
            "away; '.readings' and '.devices' are appended (default: tanfang-<host>)",
        )
        parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix")
        parser.add_argument("--share", default="", help="shared subscription group")
        parser.add_argument("--only", choices=["readings", "devices"], help="one connection")
        parser.add_argument(
            "--flush-interval",
            type=_positive(float, "--flush-interval", 0.05, 600),
            default=1.0,
            help="seconds between batches handed to ingestion (default 1)",
        )
        parser.add_argument(
            "--receive-maximum",
            type=_positive(int, "--receive-maximum", 1, MAX_RECEIVE_MAXIMUM),
            default=10_000,
            help="unacknowledged messages the broker may send us at once (default 10000)",
        )
        parser.add_argument(
            "--session-expiry",
            type=_positive(int, "--session-expiry", 0, MAX_SESSION_EXPIRY),
            default=7 * 86_400,
            help="seconds the broker keeps our session while we are away (default 1 week)",
        )
        parser.add_argument("--keepalive", type=_positive(int, "--keepalive", 5, 3600), default=30)
        parser.add_argument(
            "--fsync",
            action="store_true",
            help="fsync the spool before acknowledging (survives a power cut, not only a crash)",
        )
        parser.add_argument("--spool-dir", type=Path, help="default: MONITORING_DIR/spool/ID")
        parser.add_argument("--stats-file", type=Path, help="one JSON line per batch ingested")
        parser.add_argument(
            "--log-every", type=_positive(float, "--log-every", 1, 86_400), default=60.0
        )
        parser.add_argument("--drain", action="store_true", help="ingest the spool and exit")

    def handle(self, *args: Any, **opts: Any) -> None:
        # The root handler (settings.LOGGING) prints; -v0 keeps warnings only, -v3 debug.
        level = {0: logging.WARNING, 3: logging.DEBUG}.get(opts["verbosity"], logging.INFO)
        logging.getLogger("tanfang.monitoring.mqtt").setLevel(level)
        try:
            options = options_from(
                opts["url"],
                client_id=opts["client_id"],
                prefix=opts["prefix"].rstrip("/"),
                share=opts["share"],
                readings=opts["only"] in (None, "readings"),
                devices=opts["only"] in (None, "devices"),
                flush_interval=opts["flush_interval"],
                receive_maximum=opts["receive_maximum"],
                session_expiry=opts["session_expiry"],
                keepalive=opts["keepalive"],
                fsync=opts["fsync"],
                spool_dir=opts["spool_dir"],
                stats_file=opts["stats_file"],
                log_every=opts["log_every"],
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        subscriber = Subscriber(options)
        try:
            if opts["drain"]:
                done = subscriber.drain()
                self.stdout.write(f"{done} spooled message(s) ingested")
                return
            shutdown_on_signals(subscriber)
            counts = subscriber.run()
        except SpoolBusy as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(" ".join(f"{k}={v}" for k, v in counts.items()))
