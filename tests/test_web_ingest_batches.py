"""The data partners' delivery report (``/monitoring/batches/``): a partner's contact sees her
partner's batches only (another's answers 404), the managers of monitoring see every
partner's, other roles are refused; the reasons readings were set aside are in words, in
Chinese by default; the list's query count does not grow with the batches."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role, User
from tanfang.monitoring.ingest import ingest_frame
from tanfang.monitoring.models import DataPartner, IngestBatch, Meter
from tests.factories import lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _dirs(settings: Any, tmp_path: Path) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    settings.MONITORING_DIR = tmp_path / "monitoring"


@dataclass
class World:
    water: DataPartner
    power: DataPartner
    water_user: User
    power_user: User
    worker: User
    supervisor: User
    elder_name: str


@pytest.fixture
def world() -> World:
    tree = make_tree()
    community = tree.communities[0]
    water_user = make_user(Role.DATA_PARTNER, tree.city, username="water-contact")
    power_user = make_user(Role.DATA_PARTNER, tree.city, username="power-contact")
    water = DataPartner.objects.create(
        code="water-co", name="自来水公司", kind="water_utility", contact=water_user
    )
    power = DataPartner.objects.create(
        code="power-co", name="供电公司", kind="power_utility", contact=power_user
    )
    elder = lonely_widow(community, name="李桂英")
    Meter.objects.create(
        meter_id="W-1",
        partner=water,
        elder=elder,
        utility="water",
        register="interval",
        unit="L",
        interval_minutes=60,
    )
    Meter.objects.create(
        meter_id="E-1",
        partner=power,
        utility="electricity",
        register="interval",
        unit="kWh",
        interval_minutes=60,
    )
    return World(
        water=water,
        power=power,
        water_user=water_user,
        power_user=power_user,
        worker=make_user(Role.COMMUNITY_WORKER, community),
        supervisor=make_user(Role.DISTRICT_SUPERVISOR, tree.districts[1]),
        elder_name=elder.name,
    )


def deliver(partner: DataPartner, name: str, rows: list[tuple[str, str, str]]) -> IngestBatch:
    """A real delivery through ``ingest_frame`` (readings stored, bad ones set aside)."""
    frame = pl.DataFrame(
        {
            "meter_id": [r[0] for r in rows],
            "ts": [r[1] for r in rows],
            "value": [r[2] for r in rows],
        }
    )
    return ingest_frame(partner, frame, source="file", name=name)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def batch_ids(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'data-testid="batch-row" data-batch-id="(\d+)"', html)]


def water_batch(world: World) -> IngestBatch:
    return deliver(
        world.water,
        "water-0501.csv",
        [
            ("W-1", "2024-05-01T08:00:00+08:00", "12.5"),
            ("W-1", "2024-05-01T09:00:00+08:00", "abc"),
            ("W-404", "2024-05-01T09:00:00+08:00", "3"),
            ("W-1", "2024-05-01 10:00:00", "4"),
        ],
    )


# -- who sees what -------------------------------------------------------------------------
def test_the_contact_sees_her_partners_batches_only(world: World) -> None:
    mine = water_batch(world)
    theirs = deliver(world.power, "power.csv", [("E-1", "2024-05-01T08:00:00+08:00", "1")])
    client = signed_in(world.water_user)

    response = client.get(reverse("ingest-batch-list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert batch_ids(html) == [mine.pk]
    assert 'id="nav-batches"' in html
    assert "供电公司" not in html  # not even in the partner filter

    assert client.get(reverse("ingest-batch-detail", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("ingest-batch-detail", args=[mine.pk])).status_code == 200
    # Asking for the other partner in the filter shows nothing of it.
    html = client.get(reverse("ingest-batch-list"), {"partner": world.power.pk}).content.decode()
    assert batch_ids(html) == [mine.pk]


def test_managers_of_monitoring_see_every_partner_and_filter(world: World) -> None:
    mine = water_batch(world)
    clean = deliver(world.power, "power.csv", [("E-1", "2024-05-01T08:00:00+08:00", "1")])
    client = signed_in(world.supervisor)  # another district's supervisor: partners are the city's

    html = client.get(reverse("ingest-batch-list")).content.decode()
    assert set(batch_ids(html)) == {mine.pk, clean.pk}
    assert 'id="filter-partner"' in html
    html = client.get(reverse("ingest-batch-list"), {"partner": world.power.pk}).content.decode()
    assert batch_ids(html) == [clean.pk]
    html = client.get(reverse("ingest-batch-list"), {"problems": "on"}).content.decode()
    assert batch_ids(html) == [mine.pk]  # the power batch set nothing aside
    assert client.get(reverse("ingest-batch-detail", args=[clean.pk])).status_code == 200


@pytest.mark.parametrize("role", [Role.COMMUNITY_WORKER, Role.VISITOR, Role.AUDITOR])
def test_other_roles_are_refused_and_see_no_link(world: World, role: str) -> None:
    batch = water_batch(world)
    user = world.worker if role == Role.COMMUNITY_WORKER else make_user(role, world.worker.area)
    client = signed_in(user)
    assert client.get(reverse("ingest-batch-list")).status_code == 403
    assert client.get(reverse("ingest-batch-detail", args=[batch.pk])).status_code == 403
    assert 'id="nav-batches"' not in client.get(reverse("home"), follow=True).content.decode()


def test_anonymous_is_sent_to_the_login_and_post_is_not_allowed(world: World) -> None:
    batch = water_batch(world)
    response = Client().get(reverse("ingest-batch-detail", args=[batch.pk]))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert signed_in(world.water_user).post(reverse("ingest-batch-list")).status_code == 405


# -- what the pages say --------------------------------------------------------------------
def test_the_reasons_are_in_words_in_chinese_and_no_elder_is_shown(world: World) -> None:
    batch = water_batch(world)
    assert (batch.rows, batch.stored, batch.quarantined) == (4, 1, 3)
    client = signed_in(world.water_user)

    html = client.get(reverse("ingest-batch-list")).content.decode()
    assert "不是数字: 1" in html  # bad_value
    assert "未知的表，或属于其他数据合作方的表: 1" in html  # unknown_meter
    assert 'data-reason="bad_timestamp"' in html
    assert world.elder_name not in html

    html = client.get(reverse("ingest-batch-detail", args=[batch.pk])).content.decode()
    rows = re.findall(r'data-testid="set-aside-row" data-row="(\d+)" data-reason="(\w+)"', html)
    assert rows == [("2", "bad_value"), ("3", "unknown_meter"), ("4", "bad_timestamp")]
    assert "时间没有时区偏移" in html  # bad_timestamp, no_offset: the detail in words
    assert "W-404" in html and "abc" in html
    assert 'data-testid="batch-quarantined">3<' in html
    assert world.elder_name not in html
    assert response_is_private(client, reverse("ingest-batch-detail", args=[batch.pk]))


def response_is_private(client: Client, url: str) -> bool:
    return "no-store" in client.get(url)["Cache-Control"]


def test_the_list_query_count_does_not_grow_and_pages_by_50(world: World) -> None:
    client = signed_in(world.supervisor)
    water_batch(world)
    client.get(reverse("ingest-batch-list"))  # session and user loaded once

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("ingest-batch-list")).status_code == 200
        return len(captured.captured_queries)

    few = queries()
    now = timezone.now()
    IngestBatch.objects.bulk_create(
        IngestBatch(
            partner=world.power if n % 2 else world.water,
            source="http",
            received_at=now - dt.timedelta(minutes=n),
            rows=10,
            stored=10 - n % 3,
            quarantined=n % 3,
            reasons={"future_timestamp": n % 3} if n % 3 else {},
        )
        for n in range(60)
    )
    assert queries() == few
    # session, user, the user's area (the header), the partners (filter), the count, the page
    assert few == 6

    html = client.get(reverse("ingest-batch-list")).content.decode()
    assert len(batch_ids(html)) == 50 and 'data-testid="page-next"' in html
    html = client.get(reverse("ingest-batch-list"), {"page": 2}).content.decode()
    assert len(batch_ids(html)) == 11 and 'data-testid="page-prev"' in html


def test_the_back_office_shows_batches_read_only_with_what_was_set_aside(world: World) -> None:
    batch = water_batch(world)
    client = signed_in(world.supervisor)
    assert client.get("/admin/monitoring/ingestbatch/").status_code == 200
    response = client.get(f"/admin/monitoring/ingestbatch/{batch.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "W-404" in html and 'name="_save"' not in html
    assert client.post("/admin/monitoring/ingestbatch/add/").status_code == 403
    response = signed_in(world.worker).get("/admin/monitoring/ingestbatch/")
    assert response.status_code == 302  # no back office: sent to the login
