"""``status_refresh_all`` (the nightly recomputation) stores what ``status_refresh`` stores.

A varied city: categories and advanced age, every life status, refusals old and recent,
station and home-care-bed contracts (current, ended, not yet begun), open and closed care
actions, risk levels recorded by visits, a district surge and a city-wide weekly in-home
surge, the Spring Festival holiday window, visits of every mode and outcome before the
window, in it and after the day computed, elders with and without a stored status. The
bulk run goes first (it relies on the stored summaries), then ``status_refresh`` over all
elders; every stored field but ``computed_on`` must be equal. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import random
import uuid
from dataclasses import replace
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.areas.models import Area
from tanfang.care.models import CareAction
from tanfang.registry.models import Elder
from tanfang.registry.records import (
    AssessmentRecord,
    ContractRecord,
    ElderRecord,
    WillingnessRecord,
)
from tanfang.registry.services import elders_upsert
from tanfang.visits import status_bulk_io
from tanfang.visits.models import ElderVisitStatus, Visit, VisitRule, VisitSurge
from tanfang.visits.obligations import (
    Calendar,
    CountingPolicy,
    Frequency,
    ModeRequirement,
    PastVisit,
    PolicyRule,
    VisitPolicy,
    counts_for_rates,
    default_policy,
    period_of,
)
from tanfang.visits.policy import lookback_days, policy_forget, policy_load
from tanfang.visits.services import VisitInput, visit_record
from tanfang.visits.status import status_refresh
from tanfang.visits.status_bulk import status_refresh_all, visit_window
from tests.factories import make_elder, make_tree, make_user, new_id_number

# In the Spring Festival 2026 holiday window (15–23 February, due from the 12th), seven weeks
# after the switch from monthly to weekly visits: the overdue walk crosses the switch.
ON_HOLIDAY = dt.date(2026, 2, 20)
# Long after the switch: every elder's walk stays under the weekly rule.
ON_AUTUMN = dt.date(2026, 11, 18)
ELDERS = 48
MODES = ("phone", "online", "in_home", "remote_monitoring", "combined")
OUTCOMES = ("met",) * 6 + ("not_home", "refused", "in_hospital")


def _record(i: int, community_code: str, on: dt.date) -> ElderRecord:
    born = dt.date(1936 + (i * 7) % 26, 1 + i % 12, 1 + i % 27)
    facts: dict[str, Any] = {}
    if i % 4 == 0:  # living alone
        facts.update(
            spouse_status="deceased",
            children=[],
            household=[],
            relatives_same_subdistrict=False,
            daily_companionship=False,
        )
    if i % 3 == 0:
        facts["assessment"] = AssessmentRecord(scheme="beijing", level=1 + i % 3, assessed_on=on)
    life = {5: "deceased", 11: "moved_away", 17: "in_hospital", 23: "in_institution"}
    if i in life:
        facts["life_status"] = life[i]
    if i % 10 == 7:  # declined more than a year ago: re-confirmation due
        facts["willingness"] = WillingnessRecord(False, on - dt.timedelta(days=400), "社工")
    elif i % 10 == 5:  # declined a year ago to the day: re-confirmation due today
        facts["willingness"] = WillingnessRecord(False, on - dt.timedelta(days=365), "社工")
    elif i % 10 == 3:
        facts["willingness"] = WillingnessRecord(False, on - dt.timedelta(days=30), "社工")
    elif i % 10 == 9:
        facts["willingness"] = WillingnessRecord(True, on - dt.timedelta(days=30), "社工")
    contract = {
        1: ContractRecord("station", "驿站", "safeguard", on - dt.timedelta(days=200)),
        4: ContractRecord(
            "home_care_bed",
            "床位",
            "key_service",
            on - dt.timedelta(days=300),
            on - dt.timedelta(20),
        ),
        10: ContractRecord("station", "驿站", "key_service", on + dt.timedelta(days=3)),
    }.get(i % 12)
    if contract is not None:
        facts["contract"] = contract
    return ElderRecord(
        id_number=new_id_number(born, "female"),
        name=f"测试{i}",
        gender="female",
        birth_date=born,
        community_code=community_code,
        **facts,
    )


def _visit(elder: Elder, at: dt.datetime, rng: random.Random) -> Visit:
    mode, outcome = rng.choice(MODES), rng.choice(OUTCOMES)
    station = rng.random() < 0.2
    day = timezone.localtime(at).date()
    return Visit(
        elder=elder,
        community_id=elder.community_id,
        visitor_name="社工",
        organised_by="station" if station else "government",
        mode=mode,
        started_at=at,
        ended_at=at + dt.timedelta(minutes=20),
        person_met="elder",
        outcome=outcome,
        risk_level=rng.choice(("high", "priority", "general", "")),
        counts=counts_for_rates(PastVisit(at, mode, outcome, station), policy_load()),
        local_date=day,
        week_key=period_of(day, Frequency.WEEK)[2],
        month_key=period_of(day, Frequency.MONTH)[2],
        locked_after=at + dt.timedelta(hours=24),
    )


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    # Early mornings and late evenings too, so the Shanghai date differs from the UTC date.
    hour = rng.choice((0, 3, 7, 9, 12, 15, 18, 23))
    return dt.datetime.combine(
        day, dt.time(hour, rng.randrange(60)), tzinfo=timezone.get_current_timezone()
    )


def _city(on: dt.date, overrides: bool, surges: bool = True) -> list[Elder]:
    """The city of the module docstring, with statuses stored ten days before ``on`` for
    most elders and visits of the last days added after that."""
    policy_forget()
    tree = make_tree()
    records = [_record(i, tree.communities[i % 8].code, on) for i in range(ELDERS)]
    elders_upsert(actor=None, records=records, source="test", source_date=on)
    elders = list(Elder.objects.order_by("id"))
    assert len(elders) == ELDERS
    fangshan, city = tree.districts[1], tree.city
    if surges:
        _surges(on, fangshan, city)
    if overrides:
        VisitRule.objects.create(
            code="impaired-in-home", name="失能入户", effective_from=dt.date(2025, 6, 1),
            frequency="week", mode="in_home", categories=["impaired"], priority=10,
        )  # fmt: skip
        VisitRule.objects.create(
            code="fangshan-phone", name="房山电话", effective_from=dt.date(2025, 10, 1),
            frequency="week", mode="phone", area=fangshan, priority=5,
        )  # fmt: skip
        VisitRule.objects.create(
            code="one-daily", name="每日", effective_from=dt.date(2025, 12, 1),
            frequency="day", mode="phone", elder=elders[2], priority=100,
        )  # fmt: skip
        VisitRule.objects.create(
            code="high-risk", name="高风险", effective_from=dt.date(2025, 1, 1),
            frequency="week", mode="phone", risk_levels=["high"], priority=20,
        )  # fmt: skip
    rng = random.Random(f"status-bulk:{on}:{overrides}")
    older = []
    for i, elder in enumerate(elders):
        if i % 9 == 8:
            continue  # never visited
        for _ in range(rng.randrange(0, 7)):
            older.append(
                _visit(elder, _at(on - dt.timedelta(days=rng.randrange(4, 130)), rng), rng)
            )
    Visit.objects.bulk_create(older)
    stored = [elder.pk for i, elder in enumerate(elders) if i % 5 != 2]
    status_refresh(elder_ids=stored, on=on - dt.timedelta(days=10))
    # Visits since: in the window, and (for a few) after the day computed.
    recent = []
    for i, elder in enumerate(elders):
        if i % 3 == 1:
            recent.append(_visit(elder, _at(on - dt.timedelta(days=rng.randrange(0, 3)), rng), rng))
        if i % 7 == 6:
            recent.append(_visit(elder, _at(on + dt.timedelta(days=rng.randrange(1, 5)), rng), rng))
    Visit.objects.bulk_create(recent)
    owner = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    for i, elder in enumerate(elders[:20]):
        for closed in (False,) * (i % 3) + (True,) * (i % 2):
            CareAction.objects.create(
                elder=elder, community_id=elder.community_id, kind="hazard", subject="gas",
                state="reminded", closed=closed, owner=owner, due_on=on,
            )  # fmt: skip
    return elders


def _surges(on: dt.date, fangshan: Area, city: Area) -> None:
    VisitSurge.objects.create(
        code="heat", reason="高温", area=fangshan, starts_on=on - dt.timedelta(days=2),
        ends_on=on + dt.timedelta(days=2), frequency="day", mode="phone",
        categories_all=["living_alone"],
    )  # fmt: skip
    VisitSurge.objects.create(
        code="cold", reason="寒潮", area=city, starts_on=on - dt.timedelta(days=10),
        ends_on=on + dt.timedelta(days=10), frequency="week", mode="in_home",
        categories_all=["impaired"],
    )  # fmt: skip


def _stored() -> dict[int, dict[str, Any]]:
    rows = ElderVisitStatus.objects.order_by("elder_id").values()
    return {row["elder_id"]: {k: v for k, v in row.items() if k != "computed_on"} for row in rows}


def _refreshed(elders: list[Elder], on: dt.date) -> dict[int, dict[str, Any]]:
    """What ``status_refresh`` stores, from scratch (it computes every field from all visits;
    starting without rows makes it write every column)."""
    ElderVisitStatus.objects.all().delete()
    status_refresh(elder_ids=[e.pk for e in elders], on=on)
    return _stored()


def _assert_same(got: dict[int, dict[str, Any]], want: dict[int, dict[str, Any]]) -> None:
    assert got.keys() == want.keys()
    differences = {
        elder_id: {k: (got[elder_id][k], v) for k, v in row.items() if got[elder_id][k] != v}
        for elder_id, row in want.items()
        if got[elder_id] != row
    }
    assert not differences


def _assert_varied(want: dict[int, dict[str, Any]], on: dt.date, surges: bool) -> None:
    """The data set reaches the cases it is meant to (else the comparison proves little)."""
    rows = list(want.values())
    assert {r["excluded"] for r in rows} == {
        "", "deceased", "moved_away", "in_hospital", "in_institution", "declined"
    }  # fmt: skip
    assert any(not r["scheduled"] for r in rows)
    assert any(r["overdue_since"] for r in rows) and any(not r["overdue_since"] for r in rows)
    kinds = {o["kind"] for r in rows for o in r["open_obligations"]}
    assert {"regular", "reconfirm"} <= kinds
    assert ("surge" in kinds) == surges
    assert ("holiday" in kinds) == (on == ON_HOLIDAY)
    assert len({r["urgency"] for r in rows}) > 5
    assert {r["risk_level"] for r in rows} >= {"high", "priority", ""}
    assert any(r["last_in_home_at"] for r in rows)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("on", "overrides", "surges"),
    [
        (ON_HOLIDAY, False, True),
        (ON_HOLIDAY, True, True),
        (ON_AUTUMN, False, True),
        (ON_AUTUMN, True, True),
        (ON_AUTUMN, True, False),
    ],
    ids=["holiday-plan", "holiday-overrides", "autumn-plan", "autumn-overrides", "autumn-quiet"],
)
def test_the_bulk_run_stores_what_status_refresh_stores(on, overrides, surges, monkeypatch):
    elders = _city(on, overrides, surges)
    missing = ELDERS - ElderVisitStatus.objects.count()
    wide: list[int] = []
    original = status_bulk_io.visits_since_read

    def spy(**kw: Any) -> Any:
        wide.extend(kw["elder_ids"])
        return original(**kw)

    monkeypatch.setattr(status_bulk_io, "visits_since_read", spy)

    report = status_refresh_all(on=on)
    got = _stored()
    want = _refreshed(elders, on)

    _assert_varied(want, on, surges)
    _assert_same(got, want)
    assert (report.elders, report.inserted, report.skipped) == (ELDERS, missing, 0)
    assert missing < report.changed <= ELDERS
    lookback_from = on - dt.timedelta(days=lookback_days(policy_load(), on))
    if overrides and on == ON_HOLIDAY:
        # Rules of different mode requirements within reach of the walk: the whole look-back.
        assert report.window_from == lookback_from
        assert not wide
    else:
        # From the previous week's Monday, or the open surge or holiday window if earlier.
        assert lookback_from < report.window_from <= period_of(on, Frequency.WEEK)[0]
        assert wide  # elders visited after the day get the whole look-back


def test_the_window_is_the_whole_look_back_when_summaries_could_not_stand_in():
    plan = default_policy()
    in_home = PolicyRule(
        code="impaired-in-home",
        effective_from=dt.date(2026, 11, 1),
        effective_to=None,
        frequency=Frequency.WEEK,
        mode=ModeRequirement.IN_HOME,
        categories=frozenset({"impaired"}),
        priority=10,
    )
    lookback_from = ON_AUTUMN - dt.timedelta(days=63)

    def window(policy: VisitPolicy) -> dt.date:
        first, lookback = visit_window(policy, ON_AUTUMN, Calendar())
        assert lookback == lookback_from
        return first

    narrow = dt.date(2026, 11, 9)  # the previous week's Monday
    assert window(plan) == narrow
    # Rules with different mode requirements within the walk's reach: the whole look-back.
    assert window(replace(plan, rules=(*plan.rules, in_home))) == lookback_from
    # The same rule in force since long before: the walk never leaves its stretch.
    older = replace(in_home, effective_from=dt.date(2025, 1, 1))
    assert window(replace(plan, rules=(*plan.rules, older))) == narrow
    # Counting that a stand-in ("met", "phone", "in_home") would not pass.
    for counting in (
        CountingPolicy(effective_from=dt.date(2024, 1, 1), outcomes=frozenset({"in_hospital"})),
        CountingPolicy(effective_from=dt.date(2024, 1, 1), modes=frozenset({"online"})),
        CountingPolicy(effective_from=dt.date(2024, 1, 1), modes=frozenset({"combined"})),
    ):
        assert window(replace(plan, counting=(counting,))) == lookback_from


@pytest.mark.django_db
def test_a_second_run_writes_nothing_and_the_next_day_writes_only_changes():
    _city(ON_AUTUMN, overrides=False)
    first = status_refresh_all(on=ON_AUTUMN)
    assert first.changed > 0
    before = _stored()
    again = status_refresh_all(on=ON_AUTUMN)
    assert (again.elders, again.changed, again.inserted) == (ELDERS, 0, 0)
    assert _stored() == before
    # computed_on moves with a change only: the day the row last changed.
    assert ElderVisitStatus.objects.filter(computed_on=ON_AUTUMN).count() == first.changed

    next_day = status_refresh_all(on=ON_AUTUMN + dt.timedelta(days=1))
    after = _stored()
    changed = {k for k in before if before[k] != after[k]}
    assert 0 < next_day.changed == len(changed) < ELDERS
    days = dict(ElderVisitStatus.objects.values_list("elder_id", "computed_on"))
    assert {k for k, day in days.items() if day == next_day.on} == changed


@pytest.mark.django_db
def test_stored_summaries_are_trusted_unless_the_full_history_is_asked_for():
    elders = _city(ON_AUTUMN, overrides=False)
    # As if visits had been loaded behind the visit service's back: summaries now stale.
    ElderVisitStatus.objects.update(
        last_visit_at=None, last_counted_at=None, last_contact_at=None, last_in_home_at=None
    )
    status_refresh_all(on=ON_AUTUMN)
    trusted = _stored()
    rebuilt = status_refresh_all(on=ON_AUTUMN, full_history=True)
    assert rebuilt.changed > 0
    got = _stored()
    want = _refreshed(elders, ON_AUTUMN)
    assert trusted != want
    _assert_same(got, want)


@pytest.mark.django_db
def test_the_nightly_command_recomputes_the_whole_city_in_bulk():
    _city(ON_AUTUMN, overrides=False)
    out = io.StringIO()
    call_command("obligations", "--on", ON_AUTUMN.isoformat(), stdout=out)
    text = out.getvalue()
    assert text.startswith(f"obligations on 2026-11-18 (all): {ELDERS} elders refreshed in ")
    assert " changed (read " in text and ", 1 worker); due " in text
    assert "excluded deceased 1, declined " in text
    again = io.StringIO()
    call_command("obligations", "--on", ON_AUTUMN.isoformat(), stdout=again)
    assert "; 0 changed (read " in again.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--workers", "0"), "not a number from 1 to 64"),
        (("--area", "110000", "--full-history"), "for the whole city"),
    ],
)
def test_the_command_refuses_unusable_options_with_status_2(args, message):
    make_tree()
    with pytest.raises(CommandError, match=message) as caught:
        call_command("obligations", *args, stdout=io.StringIO())
    assert caught.value.returncode == 2


@pytest.mark.django_db
def test_inside_a_transaction_it_runs_in_this_process():
    _city(ON_AUTUMN, overrides=False)
    report = status_refresh_all(on=ON_AUTUMN, workers=2)
    assert report.workers == 1
    assert report.elders == ELDERS


def _seed_policy() -> None:
    """The plan's policy rows, as migrated: a transactional test may follow another's flush."""
    seed = importlib.import_module("tanfang.visits.migrations.0002_default_policy").seed
    seed(apps, None)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the test database of SQLite is in memory: forked workers cannot share it",
)
@pytest.mark.django_db(transaction=True)
def test_forked_workers_store_the_same():
    _seed_policy()
    elders = _city(ON_HOLIDAY, overrides=True)
    report = status_refresh_all(on=ON_HOLIDAY, workers=2)
    assert (report.workers, report.elders) == (2, ELDERS)
    _assert_same(_stored(), _refreshed(elders, ON_HOLIDAY))


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="on SQLite a chunk is read and written under one write lock",
)
@pytest.mark.django_db(transaction=True)
def test_a_row_rewritten_between_read_and_write_keeps_the_newer_answer(monkeypatch):
    _seed_policy()
    elders = _city(ON_AUTUMN, overrides=False)
    target = elders[0].pk
    ElderVisitStatus.objects.filter(elder_id=target).update(urgency=-1)
    original = status_bulk_io.statuses_write

    def meanwhile(rows: Any) -> Any:
        # Another writer (a visit recorded now) rewrites the row after our read.
        ElderVisitStatus.objects.filter(elder_id=target).update(urgency=4242)
        return original(rows)

    monkeypatch.setattr(status_bulk_io, "statuses_write", meanwhile)
    report = status_refresh_all(on=ON_AUTUMN, workers=1)
    assert report.skipped == 1
    assert ElderVisitStatus.objects.get(elder_id=target).urgency == 4242
    assert report.changed > 0


@pytest.mark.django_db
def test_visits_recorded_through_the_service_keep_the_summaries_the_bulk_run_reads():
    # The per-elder refresh after each visit must bring every summary column up to date
    # (an in-home visit 30 days ago is outside the window the bulk run reads).
    tree = make_tree()
    elder = make_elder(tree.communities[0])
    now = timezone.now()
    for days, mode in ((40, "phone"), (30, "in_home"), (20, "phone")):
        started = now - dt.timedelta(days=days)
        visit_record(
            actor=None,
            elder=elder,
            data=VisitInput(
                client_uuid=uuid.uuid4(),
                mode=mode,
                started_at=started,
                ended_at=started + dt.timedelta(minutes=20),
                person_met="elder",
                outcome="met",
            ),
        )
    status_refresh_all()
    _assert_same(_stored(), _refreshed([elder], timezone.localdate()))
