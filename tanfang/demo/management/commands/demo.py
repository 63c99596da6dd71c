"""``tanfang demo``: set up and run the whole system on a synthetic Beijing.

Migrates the database, builds the demo city unless it is already there with the same
parameters, prints the address and the demo accounts, and serves the application (unless
``--no-serve``). A database that holds anything but the demo is never touched.
"""

from __future__ import annotations

import os
import time
import unicodedata
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from tanfang.demo import serving
from tanfang.demo.accounts import DemoAccount, demo_messaging_data
from tanfang.demo.management.commands.serve import add_serve_arguments, check_serve_arguments
from tanfang.demo.monitoring import DEMO_TOKENS
from tanfang.demo.services import (
    DEFAULT_ELDERS,
    DEFAULT_SEED,
    demo_accounts,
    demo_build,
    demo_reset_database,
    demo_status,
)
from tanfang.demo.sinks import demo_sinks_start

MAX_ELDERS = 5_000_000


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class Command(BaseCommand):
    help = (
        "Build a synthetic demo city (Beijing's 16 districts, generated subdistricts, "
        "communities, elders, families and users of every role) and serve it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--elders",
            type=int,
            default=DEFAULT_ELDERS,
            help=f"number of elders (default {DEFAULT_ELDERS}; up to {MAX_ELDERS:,})",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=DEFAULT_SEED,
            help=f"seed of the generator: the same seed gives the same city "
            f"(default {DEFAULT_SEED})",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="rebuild the demo even if it is already there",
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="build, print the accounts, and stop"
        )
        parser.add_argument(
            "--no-sinks",
            action="store_true",
            help="do not start the local SMS, WeCom and SMTP sinks for unconfigured channels",
        )
        add_serve_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        elders, seed = options["elders"], options["seed"]
        if not 1 <= elders <= MAX_ELDERS:
            raise CommandError(f"--elders must be between 1 and {MAX_ELDERS:,}")
        if seed < 0:
            raise CommandError("--seed must not be negative")
        check_serve_arguments(options)
        if not options["no_serve"] and "TANFANG_PUBLIC_URL" not in os.environ:
            # Links in messages (confirmations) lead to this server, whatever its port.
            public = serving.site_url(options["host"], options["port"]).rstrip("/")
            settings.TANFANG_PUBLIC_URL = os.environ["TANFANG_PUBLIC_URL"] = public
        started = time.monotonic()
        call_command("migrate", interactive=False, verbosity=0)
        migrated = time.monotonic() - started
        status = demo_status(seed=seed, elders=elders)
        if status == "foreign":
            raise CommandError(
                "This database holds areas or elders that the demo did not create; the demo "
                "never touches such a database. Point TANFANG_DATA_DIR (or DATABASE_URL) at "
                "an empty one."
            )
        if status in ("different", "incomplete") or (options["reset"] and status == "built"):
            reason = {
                "different": "it was built with other parameters",
                "incomplete": "the last build did not finish",
                "built": "--reset was given",
            }[status]
            self.stdout.write(f"Emptying the demo database: {reason}.")
            demo_reset_database()
            status = "empty"
        if status == "empty":
            self.stdout.write(
                f"Building the demo city: {elders:,} elders, seed {seed} (migrations took "
                f"{migrated:.1f} s)."
            )
            report = demo_build(seed=seed, elders=elders, progress=self._progress(elders))
            total = time.monotonic() - started
            self.stdout.write(
                f"Built {report.areas:,} areas and {report.elders:,} elders "
                f"({report.rows:,} rows) in {report.seconds:.1f} s; {total:.1f} s in all "
                "with the migrations."
            )
            self.stdout.write(
                "  ("
                + "; ".join(f"{name} {seconds:.1f} s" for name, seconds in report.timings.items())
                + ")"
            )
            if report.monitoring is not None:
                m = report.monitoring
                self.stdout.write(
                    f"Monitoring: {m.meters:,} meters replaying real homes' data, "
                    f"{m.devices:,} devices, {m.readings:,} readings, {m.alerts:,} alerts."
                )
            accounts = report.accounts
        else:
            self.stdout.write(
                f"The demo city ({elders:,} elders, seed {seed}) is already built; "
                "--reset rebuilds it."
            )
            with transaction.atomic():
                demo_messaging_data()  # for cities built before the demo had it
            accounts = demo_accounts()
        self._print_accounts(accounts, options["host"], options["port"])
        if options["no_serve"]:
            return
        serving.collect_static()
        sinks = None
        if not options["no_sinks"] and not options["no_worker"]:
            # The worker that sends runs in this process (tanfang serve): so do the sinks.
            sinks = demo_sinks_start()
            for line in sinks.lines:
                self.stdout.write(line)
            self.stdout.flush()
        try:
            serving.serve(
                host=options["host"],
                port=options["port"],
                workers=options["workers"],
                worker=not options["no_worker"],
            )
        finally:
            if sinks is not None:
                sinks.stop()

    def _progress(self, total: int) -> Any:
        step = max(total // 10, 50_000)
        shown = [0]

        def report(done: int, of: int, seconds: float) -> None:
            if done >= shown[0] + step or (done == of and shown[0] and done != shown[0]):
                shown[0] = done
                rate = done / seconds if seconds else 0.0
                self.stdout.write(
                    f"  {done:,} / {of:,} elders, {seconds:.0f} s ({rate:,.0f} a second)"
                )

        return report if total >= 2 * step else None

    def _print_accounts(self, accounts: list[DemoAccount], host: str, port: int) -> None:
        self.stdout.write("")
        self.stdout.write(f"Open {serving.site_url(host, port)} and sign in as:")
        self.stdout.write("")
        header = ("username", "password", "role", "area")
        rows = [
            (a.username, a.password, a.role_label, f"{a.area_name} ({a.area_code})")
            for a in accounts
        ]
        widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(3)]
        for row in [header, *rows]:
            cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row[:3])]
            self.stdout.write("  " + "  ".join([*cells, row[3]]))
        self.stdout.write("")
        self.stdout.write(
            "Data partners push with 'Authorization: Partner <token>': "
            + ", ".join(f"{code} {token}" for code, token in DEMO_TOKENS.items())
            + "."
        )
        self.stdout.write(
            "All people in this city are synthetic; the accounts are for the demo only."
        )
