"""``tanfang obligations [--on DATE] [--area CODE]``: recompute what every elder owes.

The nightly job: runs the obligation engine for every elder (or those of one area) and
stores each one's visit status (``tanfang.visits.status.status_refresh``), then prints how
many were refreshed, how many are due, overdue and excluded (by reason), and the seconds it
took. Exit status 2 for an unusable option.
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

    def handle(self, *args: Any, **options: Any) -> None:
        on: dt.date = options["on"] or timezone.localdate()
        area = self._area(options["area"]) if options["area"] else None
        began = time.perf_counter()
        if area is None:
            refreshed = status_refresh(on=on)
            statuses = ElderVisitStatus.objects.all()
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
            f"{seconds:.1f} s ({refreshed / seconds if seconds else 0:.0f}/s); "
            f"due {summary['due']}, overdue {summary['overdue']}, excluded "
            + (", ".join(f"{k} {n}" for k, n in sorted(excluded.items())) or "0")
        )

    def _area(self, code: str) -> Area:
        area = Area.objects.filter(code=code.strip()).first()
        if area is None:
            raise CommandError(f"--area: no area has the code {code!r}", returncode=2)
        return area
