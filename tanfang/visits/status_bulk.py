"""The nightly recomputation of every elder's visit status: ``status_refresh_all``.

It stores what ``status.status_refresh`` stores for every elder (the tests compare all
stored fields) at a fraction of the cost, by reading less and writing less:

1. **Plan, once.** Load and compile the policy; read every area's code in one query; choose
   the window of visits (``visit_window``): from the start of the previous period of the
   slowest rule in force, or of a surge period or holiday window open on the day — not the
   whole look-back, unless the stored summaries could not stand in for older visits.
2. **Split** the elders into ``workers`` runs of ids; each run goes in a forked process
   (with its own database connection) or in this one.
3. **Per chunk** of elders in id order (``status_bulk_io``): their facts and stored status
   in one join; the database's summary of their visits in the window; contracts covering the
   day; open care actions. Each elder's stored summary (``last_counted_at``,
   ``last_contact_at``, ``last_in_home_at``...; computed from all her visits when she has no
   status row) is brought up to date with the window's and enters the engine as
   ``status.summary_visits``' stand-ins.
4. **Run the engine**: ``due_status``, and ``obligations_for`` when a surge or holiday
   window concerns the elder (otherwise her open obligation follows from her status).
5. **Write only what changed** (compared with the row as read; ``computed_on`` is written
   with a change, not compared), one short transaction per chunk.

Why this gives the same answers, and when the window is widened, is in
docs/visit-obligations.md ("The nightly recomputation").
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from typing import Any

from django.db import connection, connections, transaction
from django.utils import timezone

from tanfang.areas.models import Area
from tanfang.registry.classification import CATEGORY_BITS
from tanfang.visits import status_bulk_io as io
from tanfang.visits.models import OrganisedBy
from tanfang.visits.obligations import (
    LOOKBACK_PERIODS,
    SHANGHAI,
    Calendar,
    CompiledPolicy,
    DueStatus,
    ElderFacts,
    Obligation,
    PastVisit,
    VisitPolicy,
    compile_policy,
    due_status,
    obligations_for,
    period_of,
)
from tanfang.visits.obligations.engine import RECONFIRM_MODE, surge_period
from tanfang.visits.obligations.types import MODE_RANK, REQUIREMENT_RANK
from tanfang.visits.policy import lookback_days, policy_load
from tanfang.visits.status import CALENDAR, obligation_json, urgency_score

# Elders per chunk: one short write transaction each. SQLite holds its write lock for the
# whole chunk (read, engine, write), so its chunks are smaller.
CHUNK_POSTGRES = 10_000
CHUNK_SQLITE = 2_000
# Below this many elders a second process costs more than it saves.
WORKERS_FROM = 50_000
_LONGEST_PERIOD = dt.timedelta(days=92)
_STATION = OrganisedBy.STATION.value


@dataclass(frozen=True, slots=True)
class BulkReport:
    """What a recomputation did. Phase seconds are summed over the workers (so with two
    workers they may add up to more than ``seconds``, the wall-clock time of the run)."""

    on: dt.date
    elders: int
    changed: int  # rows written: updated or inserted
    inserted: int
    skipped: int  # rewritten by someone else between our read and our write: theirs is newer
    workers: int
    window_from: dt.date
    read_seconds: float
    engine_seconds: float
    write_seconds: float
    seconds: float


@dataclass(slots=True)
class _Tally:
    elders: int = 0
    changed: int = 0
    inserted: int = 0
    skipped: int = 0
    read: float = 0.0
    engine: float = 0.0
    write: float = 0.0

    def add(self, other: _Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True, slots=True)
class _Plan:
    on: dt.date
    policy: CompiledPolicy
    calendar: Calendar
    window_from: dt.date  # visits dated from this day are read
    lookback_from: dt.date  # status_refresh's look-back, read for elders that need it
    after_on: dt.datetime  # the first instant after ``on`` in Asia/Shanghai
    codes: dict[int, str]
    chunk: int
    full_history: bool

    @property
    def narrow(self) -> bool:
        """Whether the window is shorter than the look-back (summaries stand in for visits)."""
        return self.window_from > self.lookback_from


def status_refresh_all(
    *, on: dt.date | None = None, workers: int | None = None, full_history: bool = False
) -> BulkReport:
    """Recompute and store the visit status of every elder; see the module docstring.

    ``workers``: processes to run (default: 2 when the machine has two cores or more, the
    database can be shared by forked processes and there are at least ``WORKERS_FROM``
    elders; otherwise 1). ``full_history``: compute every elder's summary from all her
    visits instead of the stored one — once, after visits were loaded without going through
    ``visit_record`` (a migration from another system); slower, reads all history. Safe to
    re-run: a second run on the same day writes nothing.
    """
    began = time.perf_counter()
    on = on or timezone.localdate()
    policy = policy_load()
    window_from, lookback_from = visit_window(policy, on, CALENDAR)
    plan = _Plan(
        on=on,
        policy=compile_policy(policy),
        calendar=CALENDAR,
        window_from=window_from,
        lookback_from=lookback_from,
        after_on=dt.datetime.combine(on + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI),
        codes=dict(Area.objects.values_list("id", "code")),
        chunk=CHUNK_POSTGRES if io.postgres() else CHUNK_SQLITE,
        full_history=full_history,
    )
    count, top = io.elder_bounds()
    workers = _workers(workers, count)
    ranges = _ranges(count, top, workers)
    tally = _Tally()
    if len(ranges) == 1:
        tally.add(_run(plan, *ranges[0]))
    else:
        for part in _forked(plan, ranges):
            tally.add(part)
    return BulkReport(
        on=on,
        elders=tally.elders,
        changed=tally.changed,
        inserted=tally.inserted,
        skipped=tally.skipped,
        workers=len(ranges),
        window_from=window_from,
        read_seconds=tally.read,
        engine_seconds=tally.engine,
        write_seconds=tally.write,
        seconds=time.perf_counter() - began,
    )


def visit_window(policy: VisitPolicy, on: dt.date, calendar: Calendar) -> tuple[dt.date, dt.date]:
    """(first day of the visits to read, first day of ``status_refresh``'s look-back).

    The window starts at the earliest of: the start of the previous period of each rule in
    force on ``on``, the start of each surge's period containing ``on``, the start of each
    holiday window open on ``on`` — never before the look-back. It is widened to the whole
    look-back when the stored summaries could not stand in for the visits before it
    (``_summaries_suffice``).
    """
    lookback_from = on - dt.timedelta(days=lookback_days(policy, on))
    if not _summaries_suffice(policy, on, lookback_from):
        return lookback_from, lookback_from
    compiled = compile_policy(policy)
    starts = [on]
    for rule in policy.rules:
        if rule.effective_from <= on and (rule.effective_to is None or on <= rule.effective_to):
            current = period_of(on, rule.frequency)[0]
            starts.append(period_of(current - dt.timedelta(days=1), rule.frequency)[0])
    for surge in policy.surges:
        if surge.starts_on <= on <= surge.ends_on:
            starts.append(surge_period(surge, on)[0])
    holidays = compiled.extras_on(on, calendar)[1]
    for active in holidays.everywhere:
        starts.append(active.start)
    for actives in holidays.by_area.values():
        starts.extend(active.start for active in actives)
    return max(min(starts), lookback_from), lookback_from


def _summaries_suffice(policy: VisitPolicy, on: dt.date, lookback_from: dt.date) -> bool:
    """Whether the latest counting visit of each mode rank (``status.summary_visits``)
    answers every question the engine asks about an elder's visits, as long as none is
    dated after the day (those elders are handled apart).

    1. "Was there a counting visit meeting this requirement in this period?", for periods
       containing the day: the latest qualifying visit is in the period if any is.
    2. The overdue walk asks the same, period by period going back, and stops at the first
       yes. While every period walked has the same requirement, the latest qualifying visit
       before the current period answers that exactly. Requirements can differ only when
       the walk leaves the stretch of days over which the rules in force do not change; so
       it is enough that the stretch began before anything the walk can reach, or that every
       rule the walk can meet has the same mode requirement.
    3. A stand-in must count where the visit it stands for counted: each counting policy
       counts the outcome "met", "phone" if it counts any phone-rank mode, and "in_home" if
       it counts any in-person mode.
    """
    for counting in policy.counting:
        modes = counting.modes
        if "met" not in counting.outcomes:
            return False
        if not modes.isdisjoint(_CONTACT_MODES) and "phone" not in modes:
            return False
        if not modes.isdisjoint(_IN_HOME_MODES) and "in_home" not in modes:
            return False
    reach = lookback_from - _LONGEST_PERIOD
    if compile_policy(policy).rules_on(on).since <= reach:
        return True
    horizon = on - _LONGEST_PERIOD * (LOOKBACK_PERIODS + 2)
    ranks = {
        REQUIREMENT_RANK[rule.mode]
        for rule in policy.rules
        if rule.effective_from <= on and (rule.effective_to is None or rule.effective_to >= horizon)
    }
    return len(ranks) <= 1


_CONTACT_MODES = frozenset(mode for mode, rank in MODE_RANK.items() if rank == 1)
_IN_HOME_MODES = frozenset(mode for mode, rank in MODE_RANK.items() if rank == 2)


def _workers(asked: int | None, count: int) -> int:
    if asked is not None and asked < 1:
        raise ValueError("workers must be at least 1")
    if not _can_fork():
        return 1
    if asked is not None:
        return asked
    return 2 if (os.cpu_count() or 1) >= 2 and count >= WORKERS_FROM else 1


def _can_fork() -> bool:
    """Forked workers need their own connections to the same committed data: not inside a
    transaction (they could not see it) and not an in-memory SQLite database."""
    if connection.in_atomic_block:
        return False
    in_memory = getattr(connection, "is_in_memory_db", None)  # SQLite's wrapper only
    return not (in_memory is not None and in_memory())


def _ranges(count: int, top: int, workers: int) -> list[tuple[int, int]]:
    """``workers`` runs of elder ids (after, last], about equal in elders."""
    if workers <= 1 or count < workers:
        return [(0, top)]
    cuts = [io.elder_id_at(count * k // workers) - 1 for k in range(1, workers)]
    bounds = [0, *cuts, top]
    return [(bounds[i], bounds[i + 1]) for i in range(workers) if bounds[i] < bounds[i + 1]]


def _forked(plan: _Plan, ranges: list[tuple[int, int]]) -> list[_Tally]:
    """Run each range in a forked process; the parent closes its connections first, so no
    socket is shared, and each child opens its own."""
    context = multiprocessing.get_context("fork")
    connections.close_all()
    running = []
    for after, last in ranges:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(send, plan, after, last), daemon=True)
        process.start()
        send.close()
        running.append((process, receive))
    results: list[_Tally] = []
    failures: list[str] = []
    for process, receive in running:
        try:
            kind, payload = receive.recv()
        except EOFError:
            kind, payload = "error", f"worker {process.pid} ended without a report"
        process.join()
        if kind == "ok":
            results.append(payload)
        else:
            failures.append(payload)
    if failures:
        raise RuntimeError("status_refresh_all: a worker failed:\n" + "\n".join(failures))
    return results


def _child(send: Connection, plan: _Plan, after: int, last: int) -> None:
    try:
        send.send(("ok", _run(plan, after, last)))
    except BaseException:
        send.send(("error", traceback.format_exc()))
    finally:
        connections.close_all()
        send.close()


def _run(plan: _Plan, after: int, last: int) -> _Tally:
    """Recompute the elders with ``after < id <= last``, chunk by chunk."""
    with io.session():
        return _chunks(plan, after, last)


def _chunks(plan: _Plan, after: int, last: int) -> _Tally:
    tally = _Tally()
    decode = io.Decode()
    sqlite = not decode.typed
    while True:
        # SQLite: the whole chunk under one write lock, so nobody writes between our read
        # and our write. PostgreSQL: reads outside any transaction, the write guarded by xmin.
        whole: AbstractContextManager[Any] = transaction.atomic() if sqlite else nullcontext()
        with whole:
            mark = time.perf_counter()
            rows = io.elders_read(after=after, last=last, limit=plan.chunk, decode=decode)
            if not rows:
                break
            chunk = _Chunk(plan, decode, rows)
            tally.read += time.perf_counter() - mark
            writes = chunk.statuses(tally)
            mark = time.perf_counter()
            with nullcontext() if sqlite else transaction.atomic():
                updated, inserted, skipped = io.statuses_write(writes)
            tally.write += time.perf_counter() - mark
        tally.elders += len(rows)
        tally.changed += updated + inserted
        tally.inserted += inserted
        tally.skipped += skipped
        after = rows[-1][0]
    return tally


_CATEGORY_SETS: dict[int, frozenset[str]] = {}
_NO_HISTORY: io.Summary = (None, None, None, None, "")


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None or a >= b else b


def _categories(bits: int) -> frozenset[str]:
    found = _CATEGORY_SETS.get(bits)
    if found is None:
        found = frozenset(name for name, bit in CATEGORY_BITS.items() if bits & bit)
        _CATEGORY_SETS[bits] = found
    return found


class _Chunk:
    """One chunk's inputs, read on construction, and the engine run over its elders.

    With a narrow window the engine sees no visit rows: the summaries stand in for them.
    Elders with a counting visit after the day, and everyone when the window is the whole
    look-back, also get the look-back's visit rows, as ``status_refresh`` reads them."""

    def __init__(self, plan: _Plan, decode: io.Decode, rows: list[tuple[Any, ...]]) -> None:
        self.plan, self.decode, self.rows = plan, decode, rows
        first, last = rows[0][0], rows[-1][0]
        self.window = io.window_summaries_read(
            first=first, last=last, since=plan.window_from, decode=decode
        )
        self.visits: dict[int, list[tuple[Any, ...]]] = {}
        if not plan.narrow:
            found = io.visits_read(first=first, last=last, since=plan.lookback_from, decode=decode)
            self._group(found)
        self.contracts = io.contracts_read(first=first, last=last, on=plan.on, decode=decode)
        self.actions = io.open_actions_read(first=first, last=last)
        missing = [row[0] for row in rows if plan.full_history or not row[io.HAS_STATUS]]
        self.history = io.history_read(elder_ids=missing, decode=decode) if missing else {}
        self.areas: dict[tuple[int, ...], tuple[str, ...]] = {}
        self.extras = plan.policy.extras_on(plan.on, plan.calendar)

    def _group(self, visits: list[tuple[Any, ...]]) -> None:
        for visit in visits:
            self.visits.setdefault(visit[0], []).append(visit)

    def statuses(self, tally: _Tally) -> list[io.WriteRow]:
        """The rows to write: the elders whose stored status differs from the new one."""
        mark = time.perf_counter()
        out: list[io.WriteRow] = []
        later: list[tuple[Any, ...]] = []
        after_on = self.plan.after_on if self.plan.narrow else None
        for row in self.rows:
            stored, seen = self._summary(row)
            counted = seen[1]
            if after_on is not None and counted is not None and counted >= after_on:
                # A counting visit after the day hides older ones from the summaries.
                later.append((row, stored, seen))
                continue
            written = self._status(row, stored, seen, self.visits.get(row[0], ()))
            if written is not None:
                out.append(written)
        tally.engine += time.perf_counter() - mark
        if later:
            out.extend(self._with_lookback(later, tally))
        return out

    def _with_lookback(self, later: list[tuple[Any, ...]], tally: _Tally) -> list[io.WriteRow]:
        mark = time.perf_counter()
        self._group(
            io.visits_since_read(
                elder_ids=[item[0][0] for item in later],
                since=self.plan.lookback_from,
                decode=self.decode,
            )
        )
        middle = time.perf_counter()
        tally.read += middle - mark
        out = []
        for row, stored, seen in later:
            written = self._status(row, stored, seen, self.visits.get(row[0], ()))
            if written is not None:
                out.append(written)
        tally.engine += time.perf_counter() - middle
        return out

    def _summary(self, row: tuple[Any, ...]) -> tuple[io.Summary | None, io.Summary]:
        """(the stored summary, or None without a status row; the elder's all-time summary
        as ``status._history`` computes it: the stored one — or one read from all her visits
        — brought up to date with the window's visits).

        The risk level is that of her latest visit. The window has no end, so when she has
        a visit in it, her latest visit is in it too."""
        stored: io.Summary | None = None
        if row[io.HAS_STATUS]:
            at, when = io.SUMMARY_AT, self.decode.stored
            stored = (
                when(row[at]), when(row[at + 1]), when(row[at + 2]), when(row[at + 3]),
                row[io.RISK_AT],
            )  # fmt: skip
        if stored is not None and not self.plan.full_history:
            last, counted, contact, home, risk = stored
            risk = risk or ""
        else:
            last, counted, contact, home, risk = self.history.get(row[0], _NO_HISTORY)
        recent = self.window.get(row[0])
        if recent is None:
            return stored, (last, counted, contact, home, risk)
        return stored, (
            _later(last, recent[0]),
            _later(counted, recent[1]),
            _later(contact, recent[2]),
            _later(home, recent[3]),
            recent[4],
        )

    def _status(
        self, row: tuple[Any, ...], stored: io.Summary | None, seen: io.Summary, own: Any
    ) -> io.WriteRow | None:
        """Run the engine for one elder; the row to write, or None when nothing changed.

        The hot loop of a run (a million calls): positional arguments and local lookups."""
        plan = self.plan
        elder_id = row[0]
        risk = seen[4]
        advanced = row[9]
        areas = row[1:5]  # city, district, subdistrict, community
        codes = self.areas.get(areas)
        if codes is None:
            codes = self.areas[areas] = tuple(plan.codes[area_id] for area_id in areas)
        categories = _CATEGORY_SETS.get(row[5]) or _categories(row[5])
        # ElderFacts(elder_id, area_codes, categories, risk_level, life_status, willing,
        # willingness_recorded_on, station_contracts, advanced_age)
        facts = ElderFacts(
            elder_id, codes, categories, risk, row[6], row[7], row[8],
            self.contracts.get(elder_id, ()), advanced,
        )  # fmt: skip
        past = [PastVisit(v[1], v[2], v[3], v[4] == _STATION) for v in own]
        # status.summary_visits, positionally: the latest counting visit of each mode rank
        # stands in for all history.
        if seen[3] is not None:
            past.append(PastVisit(seen[3], "in_home", "met", False))
        if seen[2] is not None:
            past.append(PastVisit(seen[2], "phone", "met", False))
        if seen[1] is not None:
            past.append(PastVisit(seen[1], "remote_monitoring", "met", False))
        status = due_status(
            elder=facts, policy=plan.policy, calendar=plan.calendar, visits=past, on=plan.on
        )
        new = (
            row[4],
            status.excluded,
            str(status.frequency or ""),
            status.period_key or "",
            not status.station,
            status.next_due_on,
            status.overdue_since,
            self._open(facts, status, past),
            *seen,
            urgency_score(
                status=status,
                on=plan.on,
                risk_level=risk,
                open_actions=self.actions.get(elder_id, 0),
                advanced_age=advanced,
            ),
        )
        if stored is not None and _same(new, row, stored):
            return None
        # The row's xmin as read (PostgreSQL; "" on SQLite), or None: insert it.
        old = (row[io.XMIN] or "") if row[io.HAS_STATUS] else None
        values = list(new)
        values[_OPEN] = _open_json(values[_OPEN])[1]
        return (old, elder_id, *values, plan.on)

    def _open(self, facts: ElderFacts, status: DueStatus, past: list[PastVisit]) -> OpenKey:
        """The unsatisfied obligations open on the day (``_open_json`` gives what
        ``status_refresh`` stores for them). Without a surge or holiday window concerning
        the elder, her only possible one — the re-confirmation of a refusal, or the regular
        one — follows from her ``DueStatus`` as ``obligations_for`` would build it."""
        plan = self.plan
        on = plan.on
        if status.excluded:
            due = status.reconfirm_due_on
            if status.excluded != "declined" or due is None or due > on:
                return ()
            return (("reconfirm", "reconfirm_willingness", due, due, due, RECONFIRM_MODE, None,
                     False, True, ""),)  # fmt: skip
        surges, holidays = self.extras
        if (surges.everywhere or surges.by_area or holidays.everywhere or holidays.by_area) and (
            surges.for_elder(facts) or holidays.for_elder(facts)
        ):
            found = obligations_for(
                elder=facts, policy=plan.policy, calendar=plan.calendar, visits=past, on=on
            )
            return tuple(
                (o.kind, o.code, o.period_start, o.period_end, o.due_by, o.mode, o.frequency,
                 o.satisfied, o.scheduled, o.label)
                for o in found
                if not o.satisfied
            )  # fmt: skip
        if status.satisfied or status.frequency is None or status.mode is None:
            return ()
        start, end, _ = period_of(on, status.frequency)
        return (("regular", status.rule_code, start, end, end, status.mode, status.frequency,
                 False, not status.station, ""),)  # fmt: skip


# Unsatisfied obligations as the fields of ``Obligation`` after ``elder_id``, which
# ``status.obligation_json`` does not write: many elders share one (same rule, same day).
OpenKey = tuple[tuple[Any, ...], ...]
_OPEN = io.STATUS_COLUMNS.index("open_obligations")
_URGENCY = io.STATUS_COLUMNS.index("urgency")  # the summary and risk level lie between
_OPEN_JSON: dict[OpenKey, tuple[list[dict[str, Any]], str]] = {}
_PARSED: dict[str, Any] = {}


def _open_json(key: OpenKey) -> tuple[list[dict[str, Any]], str]:
    """What ``status_refresh`` stores for these obligations, as a list and as JSON text."""
    found = _OPEN_JSON.get(key)
    if found is None:
        if len(_OPEN_JSON) >= 4096:
            _OPEN_JSON.clear()
        stored = [obligation_json(Obligation(0, *fields)) for fields in key]
        found = _OPEN_JSON[key] = (stored, json.dumps(stored))
    return found


def _same(new: tuple[Any, ...], row: tuple[Any, ...], stored: io.Summary) -> bool:
    """Whether the stored status (``row``, its summary converted in ``stored``) equals
    ``new``; the stored JSON is parsed only when every other value already matches."""
    start = io.STORED
    if (
        new[:_OPEN] != row[start : start + _OPEN]
        or new[_OPEN + 1 : _URGENCY] != stored
        or new[_URGENCY] != row[start + _URGENCY]
    ):
        return False
    text, key = row[start + _OPEN], new[_OPEN]
    if text in ("[]", None):
        return not key
    parsed = _PARSED.get(text)
    if parsed is None:
        if len(_PARSED) >= 4096:
            _PARSED.clear()
        parsed = _PARSED[text] = json.loads(text)
    return bool(parsed == _open_json(key)[0])
