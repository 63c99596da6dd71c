"""The synthetic demo city: what it holds, that it is the same for the same seed, that no
real person is in it, and the ``demo`` and ``serve`` commands."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from stdnum.cn import ric

from tanfang.accounts.models import Role, User
from tanfang.areas.models import Area
from tanfang.core import crypto
from tanfang.demo import names, serving
from tanfang.demo.accounts import DEMO_PASSWORD
from tanfang.demo.models import DemoBuild
from tanfang.demo.people import SHOWCASE, ElderFactory
from tanfang.demo.services import DemoReport, demo_build, demo_status
from tanfang.demo.shapes import Community, id_place, is_demo_phone
from tanfang.demo.tree import tree_rows
from tanfang.registry import classification as rules
from tanfang.registry.identity import normalise_id_number
from tanfang.registry.models import (
    CapabilityAssessment,
    CareContract,
    Elder,
    FirstContact,
    OtherCategoryRule,
    VisitorAssignment,
    Willingness,
)
from tanfang.registry.services import elders_reclassify
from tests.factories import make_area

SEED = 5
ELDERS = 200


@pytest.fixture
def demo(db: Any) -> DemoReport:
    return demo_build(seed=SEED, elders=ELDERS)


def test_the_demo_has_every_role_at_a_sensible_area(demo: DemoReport) -> None:
    level_of_role = {
        Role.CITY_ADMIN: {"city"},
        Role.DISTRICT_SUPERVISOR: {"district"},
        Role.SUBDISTRICT_STAFF: {"subdistrict"},
        Role.COMMUNITY_WORKER: {"community"},
        Role.VISITOR: {"community"},
        Role.DATA_PARTNER: {"city"},
        Role.AUDITOR: {"city"},
    }
    users = list(User.objects.select_related("area"))
    assert {u.role for u in users} == set(Role.values)
    for user in users:
        assert user.area is not None and user.area.level in level_of_role[Role(user.role)]
        assert user.check_password(DEMO_PASSWORD)
    assert {a.username for a in demo.accounts} == {u.username for u in users}
    # The community worker and the visitor work where there are elders to see.
    community = User.objects.get(username="community")
    assert Elder.objects.visible_to(community).count() > 0


def test_visitors_see_exactly_their_assigned_elders(demo: DemoReport) -> None:
    for username in ("visitor", "volunteer"):
        visitor = User.objects.get(username=username)
        assigned = set(
            VisitorAssignment.objects.filter(visitor=visitor).values_list("elder_id", flat=True)
        )
        assert assigned
        assert set(Elder.objects.visible_to(visitor).values_list("id", flat=True)) == assigned


def test_every_category_appears_and_both_district_rules_fire(demo: DemoReport) -> None:
    counts = Counter(c for cats in Elder.objects.values_list("categories", flat=True) for c in cats)
    assert set(counts) == set(rules.CATEGORIES)
    assert Elder.objects.filter(focus=True).exists()
    others = Elder.objects.filter(category_bits__gte=rules.CATEGORY_BITS["other"])
    rule_districts = set(OtherCategoryRule.objects.values_list("district__code", flat=True))
    assert rule_districts == {"110101", "110111"}
    fired = {e.district.code for e in others.select_related("district") if "other" in e.categories}
    assert fired == rule_districts


def test_the_registry_holds_facts_of_every_kind(demo: DemoReport) -> None:
    assert set(CapabilityAssessment.objects.values_list("scheme", flat=True)) == {
        "beijing",
        "gbt42195",
    }
    assert Elder.objects.filter(disability_status="certified").exists()
    assert Elder.objects.filter(extremely_poor=True).exists()
    assert {"station", "home_care_bed"} <= set(CareContract.objects.values_list("kind", flat=True))
    assert Willingness.objects.filter(willing=False).exists()  # a few refuse
    assert Elder.objects.filter(rural=True).exists() and Elder.objects.filter(rural=False).exists()
    # Some facts are missing on purpose, and the classification says which.
    assert Elder.objects.exclude(missing_facts=[]).exists()
    assert Elder.objects.filter(children_known=False).exists()


def test_first_contacts_follow_the_rules_with_some_gaps_left_on_purpose(
    demo: DemoReport,
) -> None:
    elders = list(Elder.objects.select_related("first_contact").prefetch_related("children"))
    with_contact = [e for e in elders if e.first_contact is not None]
    missing = len(elders) - len(with_contact)
    assert 0 < missing < len(elders) * 0.1
    for elder in with_contact:
        contact = elder.first_contact
        assert contact is not None and contact.is_current
        if contact.relation == "child":
            assert contact.child is not None and contact.child.elder_id == elder.pk
        else:
            assert contact.designated_by_community
    by_child = sum(
        1 for e in with_contact if e.first_contact and e.first_contact.relation == "child"
    )
    with_living_children = sum(1 for e in with_contact if any(c.alive for c in e.children.all()))
    assert by_child >= 0.95 * with_living_children
    year_ago = timezone.localdate() - dt.timedelta(days=365)
    assert FirstContact.objects.filter(is_current=True, confirmed_on__lt=year_ago).exists()


def test_stored_categories_equal_a_fresh_reclassification(demo: DemoReport) -> None:
    columns = (
        "categories",
        "computed_categories",
        "category_bits",
        "category_reasons",
        "missing_facts",
        "advanced_age",
        "focus",
        "classified_on",
    )
    stored = {e["id"]: e for e in Elder.objects.values("id", *columns)}

    elders_reclassify(elders=list(Elder.objects.prefetch_related("children", "household")))

    assert {e["id"]: e for e in Elder.objects.values("id", *columns)} == stored


def test_no_real_person_is_in_the_city(demo: DemoReport) -> None:
    surnames = {s for s, _weight in names.SURNAMES}
    for elder in Elder.objects.select_related("district"):
        number = crypto.decrypt(elder.id_number_cipher)
        assert normalise_id_number(number, birth_date=elder.birth_date) == number
        assert ric.is_valid(number)
        assert 900 <= int(number[14:17]) <= 999  # the synthetic sequence range
        assert number[:6] == id_place(elder.district.code)
        assert elder.name[0] in surnames
        if elder.phone_cipher:
            assert is_demo_phone(crypto.decrypt(elder.phone_cipher))
    for contact in FirstContact.objects.all():
        assert is_demo_phone(crypto.decrypt(contact.phone_cipher))


def test_the_same_seed_gives_the_same_city() -> None:
    today = dt.date(2026, 6, 1)
    communities = [
        Community("110101001001", "多福巷社区", False, "110101"),
        Community("110111101201", "南关村", True, "110111"),
    ]

    def city(seed: int) -> list[Any]:
        factory = ElderFactory(seed=seed, communities=communities, today=today)
        return [factory.make(factory.identity(i)) for i in range(150)]

    first, second = city(SEED), city(SEED)
    assert first == second
    assert [p.name for p in city(SEED + 1)] != [p.name for p in first]
    assert tree_rows(seed=SEED, elders=500) == tree_rows(seed=SEED, elders=500)
    assert tree_rows(seed=SEED, elders=500) != tree_rows(seed=SEED + 1, elders=500)


def test_two_builds_with_the_same_seed_hold_the_same_people(demo: DemoReport) -> None:
    built = sorted(
        (e.name, crypto.decrypt(e.id_number_cipher), e.community.code)
        for e in Elder.objects.select_related("community")
    )
    factory = ElderFactory(
        seed=SEED,
        communities=[
            Community(a.code, a.name, a.community_kind == "villagers", a.code[:6])
            for a in Area.objects.filter(level="community").order_by("code")
        ],
        today=timezone.localdate(),
    )
    again = sorted(
        (p.name, p.id_number, p.community.code)
        for p in (factory.make(factory.identity(i)) for i in range(ELDERS))
    )
    assert built == again


def test_the_first_elders_are_the_showcase(demo: DemoReport) -> None:
    first = list(Elder.objects.order_by("id")[: len(SHOWCASE)].select_related("district"))
    for elder, (district, _rural, _profile) in zip(first, SHOWCASE, strict=True):
        if district:
            assert elder.district.code == district


def test_the_build_is_marked_and_recognised(demo: DemoReport) -> None:
    marker = DemoBuild.objects.get()
    assert (marker.seed, marker.elders, marker.complete) == (SEED, ELDERS, True)
    assert demo_status(seed=SEED, elders=ELDERS) == "built"
    assert demo_status(seed=SEED, elders=ELDERS + 1) == "different"
    assert demo.elders == Elder.objects.count() == ELDERS


def test_demo_command_builds_prints_the_accounts_and_starts_fast_the_second_time(
    db: Any,
) -> None:
    out = StringIO()
    call_command("demo", "--elders", "40", "--seed", "9", "--no-serve", stdout=out)

    text = out.getvalue()
    assert "http://127.0.0.1:8000/" in text
    for username in ("admin", "dongcheng", "street", "community", "visitor", "partner", "auditor"):
        assert f"  {username} " in text
    assert DEMO_PASSWORD in text
    assert Elder.objects.count() == 40

    again = StringIO()
    call_command("demo", "--elders", "40", "--seed", "9", "--no-serve", stdout=again)
    assert "already built" in again.getvalue()
    assert "admin" in again.getvalue()
    assert Elder.objects.count() == 40


def test_demo_command_never_touches_a_database_it_did_not_build(db: Any) -> None:
    make_area("110000", "北京市", "city")

    with pytest.raises(CommandError, match="did not create"):
        call_command("demo", "--elders", "10", "--no-serve", stdout=StringIO())
    assert not Elder.objects.exists()


def test_demo_command_checks_its_options(db: Any) -> None:
    with pytest.raises(CommandError, match="--elders"):
        call_command("demo", "--elders", "0", "--no-serve", stdout=StringIO())
    with pytest.raises(CommandError, match="--port"):
        call_command("demo", "--port", "0", "--no-serve", stdout=StringIO())


class _Exec(Exception):
    pass


def test_serve_collects_static_files_then_runs_gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(serving, "collect_static", lambda: calls.append("collectstatic"))

    def fake_exec(path: str, argv: list[str]) -> None:
        calls.append(argv)
        raise _Exec

    monkeypatch.setattr(serving.os, "execv", fake_exec)
    out = StringIO()
    with pytest.raises(_Exec):
        call_command(
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "8123",
            "--workers",
            "3",
            "--no-worker",
            stdout=out,
        )

    assert calls[0] == "collectstatic"
    argv = calls[1]
    assert argv[1:4] == ["-m", "gunicorn", "tanfang.wsgi:application"]
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8123"
    assert argv[argv.index("--workers") + 1] == "3"
    assert "http://127.0.0.1:8123/" in out.getvalue()


def test_site_url_and_bind_for_ipv6() -> None:
    assert serving.site_url("::1", 9000) == "http://[::1]:9000/"
    argv = serving.gunicorn_argv(host="::1", port=9000, workers=1)
    assert argv[argv.index("--bind") + 1] == "[::1]:9000"


def test_the_large_build_path_gives_the_same_city(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexes built after the load and foreign keys unchecked: the same rows, the indexes
    back, the checks back on."""
    from django.db import connection

    from tanfang.demo import services
    from tanfang.demo.bulk import _plain_indexes

    indexes = sorted(_plain_indexes(Elder))
    monkeypatch.setattr(services, "LARGE_FROM", 10)
    demo_build(seed=SEED, elders=60, batch_size=25)

    assert sorted(_plain_indexes(Elder)) == indexes
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW session_replication_role")
            assert cursor.fetchone()[0] == "origin"
        else:
            cursor.execute("PRAGMA foreign_keys")
            assert cursor.fetchone()[0] == 1
    factory = ElderFactory(
        seed=SEED,
        communities=[
            Community(a.code, a.name, a.community_kind == "villagers", a.code[:6])
            for a in Area.objects.filter(level="community").order_by("code")
        ],
        today=timezone.localdate(),
    )
    expected = sorted(factory.make(factory.identity(i)).name for i in range(60))
    assert sorted(Elder.objects.values_list("name", flat=True)) == expected
    assert FirstContact.objects.filter(child__isnull=False).exists()
