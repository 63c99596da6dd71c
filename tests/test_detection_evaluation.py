"""``tanfang evaluate-detection``: the fixed split, the quick options and the target check."""

from __future__ import annotations

import importlib
import io
import json

import pytest
from django.core.management import call_command

from tanfang.monitoring.detection import datasets, protocol

evaluate_command = importlib.import_module(
    "tanfang.monitoring.management.commands.evaluate-detection"
)
HAVE_DATA = datasets.default_data_dir().is_dir()


def test_targets_are_checked_against_the_fixed_rule_of_the_same_part() -> None:
    row = {
        "routine": {
            "detected_12h": 0.957,
            "median_hours": 8.66,
            "false_alerts": 1211,
            "false_per_household_month": 2.7,
        },
        "fixed_12h": {"false_alerts": 1700},
    }
    assert [ok for _, ok in evaluate_command.target_checks("water", row)] == [True, True, False]
    row["fixed_12h"]["false_alerts"] = 1730
    assert all(ok for _, ok in evaluate_command.target_checks("water", row))
    checks = dict(evaluate_command.target_checks("electricity", row))
    assert checks == {
        "≥95% within 12 h": True,
        "median < 4 h": False,
        "< 1 false/household-month": False,
    }


@pytest.mark.skipif(not HAVE_DATA, reason="needs ../shared/data")
def test_the_water_split_is_fixed_and_does_not_follow_the_incident_seed() -> None:
    water = datasets.load_daiad(datasets.default_data_dir())
    split = protocol.water_split(water)
    assert len(split["tune"]) == len(split["report"]) == 46
    assert not set(split["tune"]) & set(split["report"])
    assert protocol.water_split(water) == split


@pytest.mark.skipif(not HAVE_DATA, reason="needs ../shared/data")
def test_a_quick_run_of_one_part_prints_both_rule_books() -> None:
    out = io.StringIO()
    call_command(
        "evaluate-detection",
        "--dataset",
        "electricity",
        "--part",
        "report",
        "--incidents",
        "6",
        "--json",
        stdout=out,
    )
    figures = json.loads(out.getvalue())
    assert list(figures) == ["electricity"]
    assert list(figures["electricity"]) == ["report"]
    books = figures["electricity"]["report"]
    assert set(books) == {"routine", "fixed_12h"}
    assert all(b["incidents"] == 6 for b in books.values())
    assert books["routine"]["household_months"] > 4
