"""``tanfang outbox [--worker NAME] [--seconds S]``: send the outbox's messages.

Runs ``outbox_run`` again and again until ``--seconds`` have passed (0: forever) or
SIGTERM/SIGINT, then finishes the batches it holds and exits 0. Messages this worker name
left ``sending`` in an earlier run (a process killed mid-send) are looked up at the
provider at once on start, so the name must be unique among running workers (the default,
``<host>-<pid>``, is). ``tanfang worker`` runs the outbox among the other jobs; this
command is for a dedicated outbox process (and the kill test and benchmark).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tanfang.notifications.outbox import outbox_run


class Command(BaseCommand):
    help = "Send the outbox's messages (until --seconds passed or SIGTERM)."
    # The system checks import every URL and view (seconds): a restarted worker should be
    # sending again at once.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--worker", default=f"{socket.gethostname()}-{os.getpid()}")
        parser.add_argument("--seconds", type=float, default=0.0, help="0: until SIGTERM")
        parser.add_argument("--in-flight", type=int, default=None, help="batches at once")
        parser.add_argument("--lease", type=float, default=None, help="lease seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"outbox worker {options['worker']} started")
        self.stdout.flush()
        limit = float(options["seconds"])
        began = time.monotonic()
        handled = 0
        first = True
        while not stop.is_set():
            left = limit - (time.monotonic() - began) if limit > 0 else 60.0
            if left <= 0:
                break
            handled += outbox_run(
                worker=options["worker"],
                max_seconds=min(60.0, left),
                stop=stop,
                in_flight=options["in_flight"],
                lease_seconds=options["lease"],
                reclaim_own=first,
            )
            first = False
        self.stdout.write(f"outbox worker {options['worker']}: {handled} messages handled")
