"""Building the synthetic demo city: Beijing's tree, elders, families, rules and users.

``demo_status`` says what the database holds; ``demo_build`` fills an empty one;
``demo_reset_database`` empties a database that holds only the demo. The ``demo`` command
puts them together (docs/demo.md).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from tanfang.accounts.models import User
from tanfang.areas.models import Area, AreaLevel, CommunityKind
from tanfang.areas.services import areas_import_rows
from tanfang.demo.accounts import (
    ACCOUNT_ORDER,
    DEMO_PASSWORD,
    DemoAccount,
    demo_accounts_create,
)
from tanfang.demo.bulk import (
    BulkContext,
    foreign_keys_unchecked,
    indexes_deferred,
    insert_batch,
    reset_sequences,
    tune_connection,
)
from tanfang.demo.models import DemoBuild
from tanfang.demo.monitoring import MonitoringReport, demo_monitoring_create
from tanfang.demo.people import ElderFactory
from tanfang.demo.pipeline import batches, default_workers
from tanfang.demo.shapes import Community
from tanfang.demo.tree import tree_rows
from tanfang.demo.visits import demo_statuses_refresh, demo_teams_create, demo_visits_create
from tanfang.registry import classification as rules
from tanfang.registry.models import Elder, OtherCategoryRule

# Bump when the generator changes, so that an old demo database is rebuilt.
DEMO_VERSION = 2
DEFAULT_SEED = 2024
DEFAULT_ELDERS = 2000
BATCH_SIZE = 5000
# From this size on, indexes are built after the load rather than during it, and foreign
# keys are not checked row by row (see ``bulk.py``).
LARGE_FROM = 20_000

# Two districts' own rules for the "other" category (docs/classification.md has the format).
OTHER_RULES: tuple[tuple[str, str, str, list[dict[str, object]]], ...] = (
    (
        "110111",
        "aged90_with_disabled_child",
        "90岁及以上且仅与重度残疾子女共同生活",
        [
            {"fact": "age", "op": ">=", "value": 90},
            {"fact": "lives_with_disabled_child", "op": "==", "value": True},
            {"fact": "household_size", "op": "==", "value": 1},
        ],
    ),
    (
        "110101",
        "aged80_extremely_poor",
        "80岁及以上的城乡特困老年人",
        [
            {"fact": "age", "op": ">=", "value": 80},
            {"fact": "extremely_poor", "op": "==", "value": True},
        ],
    ),
)


class DemoError(RuntimeError):
    """The demo cannot be built here; the message says why and what to do."""


@dataclass
class DemoReport:
    built: bool
    elders: int
    areas: int
    rows: int = 0
    seconds: float = 0.0
    accounts: list[DemoAccount] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    monitoring: MonitoringReport | None = None


def demo_status(*, seed: int, elders: int) -> str:
    """``empty``, ``built`` (same parameters), ``different``, ``incomplete`` or ``foreign``
    (the database holds areas or elders that the demo did not put there)."""
    marker = DemoBuild.objects.order_by("-started_at", "-id").first()
    if marker is None:
        return "foreign" if Area.objects.exists() or Elder.objects.exists() else "empty"
    if not marker.complete:
        return "incomplete"
    if (marker.seed, marker.elders, marker.version) == (seed, elders, DEMO_VERSION):
        return "built"
    return "different"


def demo_reset_database() -> None:
    """Empty a database that holds only the demo, and migrate it again.

    The audit log refuses row deletion by trigger, so an SQLite database is removed as a file
    and a PostgreSQL one is emptied with ``flush`` (TRUNCATE, which row triggers do not see).
    """
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        if not name or name == ":memory:" or name.startswith("file:"):
            raise DemoError("cannot reset an in-memory SQLite database")
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
    else:
        call_command("flush", interactive=False, verbosity=0)


def other_rules_create() -> None:
    for district_code, code, label, conditions in OTHER_RULES:
        rules.compile_other_rules([{"code": code, "label": label, "all": conditions}])
        OtherCategoryRule.objects.update_or_create(
            district=Area.objects.get(code=district_code),
            code=code,
            defaults={"label": label, "conditions": {"all": conditions}, "active": True},
        )


def _communities() -> list[Community]:
    grids: dict[int, list[str]] = {}
    for grid in Area.objects.filter(level=AreaLevel.GRID).order_by("code"):
        if grid.community_id is not None:
            grids.setdefault(grid.community_id, []).append(grid.code)
    return [
        Community(
            code=area.code,
            name=area.name,
            rural=area.community_kind == CommunityKind.VILLAGERS,
            district_code=area.code[:6],
            grid_codes=tuple(grids.get(area.pk, ())),
        )
        for area in Area.objects.filter(level=AreaLevel.COMMUNITY).order_by("code")
    ]


def _load_elders(
    *,
    seed: int,
    elders: int,
    today: dt.date,
    batch_size: int,
    workers: int | None,
    progress: Callable[[int, int, float], None] | None,
    started: float,
    timings: dict[str, float],
) -> int:
    """Generate and insert the elders, a transaction per batch; returns the rows written."""
    context = BulkContext.load(today=today)
    factory = ElderFactory(seed=seed, communities=_communities(), today=today)
    prepared = batches(
        factory=factory,
        context=context,
        elders=elders,
        batch_size=batch_size,
        workers=default_workers(elders) if workers is None else workers,
    )
    rows = done = 0
    mark = time.monotonic()
    # The first batch starts the workers, which closes this process's connection: tune the
    # connection only after that.
    batch = next(prepared, None)
    waited, inserting = time.monotonic() - mark, 0.0
    large = elders >= LARGE_FROM
    with (
        indexes_deferred() if large else nullcontext(),
        foreign_keys_unchecked() if large else nullcontext(),
    ):
        while batch is not None:
            mark = time.monotonic()
            tune_connection()
            with transaction.atomic():
                rows += insert_batch(batch)
            inserting += time.monotonic() - mark
            done += len(batch.elders)
            if progress is not None:
                progress(done, elders, time.monotonic() - started)
            mark = time.monotonic()
            batch = next(prepared, None)
            waited += time.monotonic() - mark
        mark = time.monotonic()
    timings["waiting for batches"] = waited
    timings["inserting"] = inserting
    timings["indexing"] = time.monotonic() - mark
    reset_sequences()
    mark = time.monotonic()
    _analyze()
    timings["analyze"] = time.monotonic() - mark
    return rows


def _analyze() -> None:
    """Give the query planner statistics of the freshly loaded tables.

    Without them PostgreSQL (until autovacuum happens to run) plans a city-wide filter over
    a million rows as if the table were empty, and a list page takes seconds.
    """
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# Above this many elders the demo writes one week of visit history instead of eight.
VISIT_HISTORY_UP_TO = 100_000


def demo_build(
    *,
    seed: int = DEFAULT_SEED,
    elders: int = DEFAULT_ELDERS,
    today: dt.date | None = None,
    batch_size: int = BATCH_SIZE,
    workers: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> DemoReport:
    """Build the demo city into an empty database.

    Steps: leave a marker (incomplete); import the tree through ``areas_import_rows``; add
    the district rules; generate the elders batch by batch and insert each batch in one
    transaction (``bulk.py``); create the users and the visitors' assignments; mark the
    build complete. The same seed and size give the same city; the monitoring step
    (``monitoring.py``) adds meters with real homes' readings and runs a detection tick.
    """
    status = demo_status(seed=seed, elders=elders)
    if status != "empty":
        raise DemoError(f"the database is not empty ({status}); reset it first")
    on = today or timezone.localdate()
    started = time.monotonic()
    timings: dict[str, float] = {}
    marker = DemoBuild.objects.create(
        seed=seed, elders=elders, version=DEMO_VERSION, built_on=on, started_at=timezone.now()
    )
    with transaction.atomic():
        areas_import_rows(tree_rows(seed=seed, elders=elders))
        other_rules_create()
    timings["tree"] = time.monotonic() - started
    rows = _load_elders(
        seed=seed,
        elders=elders,
        today=on,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        started=started,
        timings=timings,
    )
    reset_sequences()
    with transaction.atomic():
        accounts = demo_accounts_create(seed=seed, today=on)
        demo_teams_create()
    mark = time.monotonic()
    demo_visits_create(seed=seed, today=on, weeks=8 if elders <= VISIT_HISTORY_UP_TO else 1)
    demo_statuses_refresh(today=on)
    _analyze()
    timings["visits"] = time.monotonic() - mark
    # Monitoring (issue 4): meters and devices, real homes' readings, the first alerts.
    monitoring = demo_monitoring_create(seed=seed)
    timings.update({f"monitoring: {k}": v for k, v in monitoring.timings.items()})
    seconds = time.monotonic() - started
    marker.complete = True
    marker.seconds = seconds
    marker.save(update_fields=["complete", "seconds"])
    return DemoReport(
        built=True,
        elders=elders,
        areas=Area.objects.count(),
        rows=rows,
        seconds=seconds,
        accounts=accounts,
        timings=timings,
        monitoring=monitoring,
    )


def demo_accounts() -> list[DemoAccount]:
    """The demo accounts of an existing build, as printed after a build."""
    users = User.objects.filter(username__in=ACCOUNT_ORDER).select_related("area")
    found = {u.username: u for u in users if u.area is not None}
    return [
        DemoAccount(name, DEMO_PASSWORD, user.role, user.area.code, user.area.name)
        for name in ACCOUNT_ORDER
        if (user := found.get(name)) is not None and user.area is not None
    ]
