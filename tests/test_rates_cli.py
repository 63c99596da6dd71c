"""``tanfang rates`` (JSON and CSV, errors with exit status 2, closing a period) and
``tanfang obligations`` (the nightly recomputation of visit statuses)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tanfang.visits.management.commands.rates import CSV_COLUMNS
from tanfang.visits.management.commands.rates import Command as RatesCommand
from tanfang.visits.models import ElderVisitStatus, RateSnapshot
from tanfang.visits.status import status_refresh
from tests.factories import make_elder, make_tree, record_visit

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
ON = "2026-03-05"


@pytest.fixture
def tree():
    """Two due elders in the first community, one visited in 2026-W10; one deceased."""
    tree = make_tree()
    first = make_elder(tree.communities[0], name="甲")
    make_elder(tree.communities[0], name="乙")
    make_elder(tree.communities[0], name="丙", life_status="deceased")
    started = dt.datetime(2026, 3, 3, 10, 0, tzinfo=SHANGHAI)
    record_visit(
        None, first, mode="phone", started_at=started, ended_at=started + dt.timedelta(minutes=5)
    )
    status_refresh(on=dt.date(2026, 3, 5))
    return tree


def rates(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("rates", *args, "--on", ON, stdout=out, stderr=err)
    return out.getvalue()


def test_json_is_one_array_with_a_row_for_every_node_under_the_area(tree):
    rows = json.loads(rates("--period", "2026-W10", "--area", tree.districts[0].code))
    assert [row["area_code"] for row in rows] == [
        "110101",
        "110101001",
        "110101001001",
        "110101001002",
        "110101002",
        "110101002001",
        "110101002002",
    ]
    assert rows[0] == {
        "area_code": "110101",
        "name": "东城区",
        "level": "district",
        "period": "2026-W10",
        "due": 2,
        "visited": 1,
        "rate": 0.5,
        "target": 1.0,
        "excluded": {
            "deceased": 1,
            "moved_away": 0,
            "in_institution": 0,
            "in_hospital": 0,
            "declined": 0,
        },
        "basis": "computed",
    }
    assert rows[-1]["rate"] is None  # nobody due


def test_csv_has_a_header_and_one_line_per_node(tree):
    text = rates("--period", "2026-03", "--area", tree.subdistricts[0].code, "--format", "csv")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == list(CSV_COLUMNS)
    assert lines[1] == [
        "110101001",
        "东城区第1街道",
        "subdistrict",
        "2026-03",
        "2",
        "1",
        "0.5000",
        "1.0",
        "1",
        "0",
        "0",
        "0",
        "0",
        "computed",
    ]
    assert lines[3][6] == ""  # the second community: nobody due, no rate
    assert len(lines) == 4


def test_without_an_area_every_city_and_without_a_period_the_current_week(tree):
    rows = json.loads(rates())
    assert rows[0]["area_code"] == "110000" and rows[0]["period"] == "2026-W10"
    assert len(rows) == 15


def test_close_keeps_the_snapshot_and_the_output_says_so(tree):
    out = rates("--period", "2026-W09", "--area", tree.city.code, "--close")
    assert {row["basis"] for row in json.loads(out)} == {"snapshot"}
    assert RateSnapshot.objects.filter(period="2026-W09").count() == 15


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--period", "2026-W60"), "is not a period"),
        (("--period", "2026-3"), "is not a period"),
        (("--period", "2026-W11"), "has not begun"),
        (("--area", "110199"), "no area has the code 110199"),
        (("--period", "2026-W10", "--close"), "is not over yet"),
    ],
)
def test_bad_requests_are_errors_with_exit_status_2(tree, args, message):
    with pytest.raises(CommandError, match=message) as caught:
        call_command("rates", *args, "--on", ON, "--lang", "en", stdout=io.StringIO())
    assert caught.value.returncode == 2


def test_from_the_command_line_the_error_goes_to_stderr_and_the_status_is_2(tree, capsys):
    with pytest.raises(SystemExit) as caught:
        RatesCommand().run_from_argv(
            ["tanfang", "rates", "--period", "2026/03", "--lang", "en", "--skip-checks"]
        )
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "“2026/03” is not a period" in captured.err


def test_obligations_refreshes_the_statuses_of_an_area_and_reports_counts(tree):
    ElderVisitStatus.objects.all().delete()
    out = io.StringIO()
    call_command("obligations", "--on", ON, "--area", tree.subdistricts[0].code, stdout=out)
    assert ElderVisitStatus.objects.count() == 3
    assert ElderVisitStatus.objects.filter(excluded="deceased").count() == 1
    text = out.getvalue()
    assert text.startswith("obligations on 2026-03-05 (110101001): 3 elders refreshed in ")
    assert "due 2, overdue " in text and "excluded deceased 1" in text

    ElderVisitStatus.objects.all().delete()
    call_command("obligations", "--on", ON, stdout=io.StringIO())
    assert ElderVisitStatus.objects.count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--area", "110199"), "no area has the code"), (("--on", "2026-13-01"), "not a date")],
)
def test_obligations_bad_options_exit_with_status_2(tree, args, message):
    with pytest.raises(CommandError, match=message) as caught:
        call_command("obligations", *args, stdout=io.StringIO())
    assert caught.value.returncode == 2
