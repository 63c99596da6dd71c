"""``tanfang obligations [--on DATE] [--area CODE] [--workers N] [--full-history]``.

The nightly job: runs the obligation engine for every elder and stores each one's visit
status (``tanfang.visits.status_bulk.status_refresh_all``: raw SQL, only changed rows
written, optionally in several processes), or, with ``--area``, for the elders of one area
through the per-elder path (``tanfang.visits.status.status_refresh``). Then prints how many
were refreshed (and, for everyone, how many rows changed and the seconds per phase), how
many are due, overdue and excluded (by reason), and the seconds it took. Exit status 2 for
an unusable option.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q
from django.utils import timezone

from tanfang.areas.models import Area, AreaLevel
from tanfang.core.cli_args import day_argument
from tanfang.registry.models import Elder
from tanfang.visits.models import ElderVisitStatus
from tanfang.visits.status import status_refresh
from tanfang.visits.status_bulk import status_refresh_all


def _workers(raw: str) -> int:
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if not 1 <= workers <= 64:
        raise CommandError(f"--workers: {raw!r} is not a number from 1 to 64", returncode=2)
    return workers


class Command(BaseCommand):
    help = "Recompute every elder's visit obligations and status (the nightly job)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--on",
            type=day_argument,
            default=None,
            help="the day to compute for, YYYY-MM-DD; default today",
        )
        parser.add_argument(
            "--area", default="", metavar="CODE", help="only the elders of this area (any level)"
        )
        parser.add_argument(
            "--workers",
            type=_workers,
            default=None,
            metavar="N",
            help="processes for the whole city (default: 2 on two cores or more, else 1)",
        )
        parser.add_argument(
            "--full-history",
            action="store_true",
            help="recompute every elder's visit summary from all her visits (once, after "
            "visits were loaded without the visit service)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        on: dt.date = options["on"] or timezone.localdate()
        area = self._area(options["area"]) if options["area"] else None
        if area is not None and (options["workers"] or options["full_history"]):
            raise CommandError(
                "--workers and --full-history are for the whole city, not with --area",
                returncode=2,
            )
        began = time.perf_counter()
        detail = ""
        if area is None:
            report = status_refresh_all(
                on=on, workers=options["workers"], full_history=options["full_history"]
            )
            refreshed = report.elders
            statuses = ElderVisitStatus.objects.all()
            detail = (
                f"; {report.changed} changed (read {report.read_seconds:.1f} s, engine "
                f"{report.engine_seconds:.1f} s, write {report.write_seconds:.1f} s, "
                f"{report.workers} worker{'s' if report.workers > 1 else ''})"
            )
        else:
            column = "grid_id" if area.level == AreaLevel.GRID else f"{area.level}_id"
            ids = list(Elder.objects.filter(**{column: area.pk}).values_list("pk", flat=True))
            refreshed = status_refresh(elder_ids=ids, on=on) if ids else 0
            statuses = ElderVisitStatus.objects.filter(**{f"elder__{column}": area.pk})
        seconds = time.perf_counter() - began
        summary = statuses.aggregate(
            due=Count("pk", filter=Q(excluded="")),
            overdue=Count("pk", filter=Q(excluded="", overdue_since__isnull=False)),
        )
        excluded = dict(
            statuses.exclude(excluded="")
            .values_list("excluded")
            .annotate(n=Count("pk"))
            .values_list("excluded", "n")
            .order_by()
        )
        where = area.code if area is not None else "all"
        self.stdout.write(
            f"obligations on {on.isoformat()} ({where}): {refreshed} elders refreshed in "
            f"{seconds:.1f} s ({refreshed / seconds if seconds else 0:.0f}/s){detail}; "
            f"due {summary['due']}, overdue {summary['overdue']}, excluded "
            + (", ".join(f"{k} {n}" for k, n in sorted(excluded.items())) or "0")
        )

    def _area(self, code: str) -> Area:
        area = Area.objects.filter(code=code.strip()).first()
        if area is None:
            raise CommandError(f"--area: no area has the code {code!r}", returncode=2)
        return area
