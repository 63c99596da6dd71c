"""``tanfang detect`` and ``tanfang evaluate-detection`` end to end, on real excerpts.

tests/data/detection/README.md says where the readings come from. No database is touched.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tanfang.monitoring.detection import datasets, protocol
from tanfang.monitoring.detection.config import RuleBook

DATA = Path(__file__).parent / "data" / "detection"
FIELDS = {
    "meter_id",
    "elder_id",
    "kind",
    "rule",
    "severity",
    "started_at",
    "detected_at",
    "evidence",
}


def detect(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command(
        "detect", "--meters", str(DATA / "meters.csv"), *args, stdout=out, stderr=io.StringIO()
    )
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_open_alerts_at_now_from_a_folder_of_readings() -> None:
    # Water W1 stops after 2016-05-04 (end of the excerpt); gas G1 stops 2012-11-09.
    lines = detect(
        "--readings", str(DATA / "readings"), "--now", "2016-05-05T12:00:00+02:00", "--lag", "60m"
    )
    kinds = {(line["meter_id"], line["kind"]) for line in lines}
    assert ("W1", "data_silence") in kinds and ("G1", "data_silence") in kinds
    assert not {k for k in kinds if k[1] in ("inactivity", "missed_routine", "low_usage")}
    for line in lines:
        assert line.keys() >= FIELDS
    water = next(line for line in lines if line["meter_id"] == "W1")
    assert water["elder_id"] == "E1"
    assert water["started_at"].startswith("2016-05-04T")
    assert water["started_at"].endswith("+02:00")


def test_replay_prints_events_in_time_order_using_only_the_past() -> None:
    lines = detect(
        "--readings",
        str(DATA / "readings" / "water-w1.csv"),
        "--replay",
        "2016-05-03T00:00:00+02:00",
        "2016-05-05T12:00:00+02:00",
        "--tick",
        "30m",
    )
    assert lines, "the water meter goes silent at the end of the excerpt"
    moments = [line["at"] for line in lines]
    assert moments == sorted(moments)
    assert {line["event"] for line in lines} <= {"raised", "resolved"}
    silence = [line for line in lines if line["kind"] == "data_silence"]
    assert {line["meter_id"] for line in silence} == {"W1", "G1"}  # G1 has no readings here
    last = [line for line in silence if line["meter_id"] == "W1" and line["event"] == "raised"][-1]
    assert last["started_at"].startswith("2016-05-04T")
    assert last["detected_at"] > last["started_at"]


def test_spark_engine_rejects_unusable_files_before_starting_spark() -> None:
    # The Spark engine itself: tests/test_detection_spark.py (both engines, same lines).
    with pytest.raises(CommandError, match="no such file") as info:
        detect(
            "--readings",
            str(DATA / "nope.csv"),
            "--now",
            "2016-05-05T12:00:00+02:00",
            "--engine",
            "spark",
        )
    assert info.value.returncode == 2


def test_unusable_options_exit_2() -> None:
    with pytest.raises(CommandError) as info:
        detect("--readings", str(DATA / "readings"), "--now", "2016-05-05T12:00:00")
    assert info.value.returncode == 2
    with pytest.raises(CommandError):
        detect("--readings", str(DATA / "nope.csv"), "--now", "2016-05-05T12:00:00Z")


@pytest.mark.skipif(not datasets.default_data_dir().is_dir(), reason="needs ../shared/data")
def test_the_protocol_runs_on_a_slice_of_the_electricity_data() -> None:
    data = datasets.load_liu(datasets.default_data_dir())
    result = protocol.evaluate_electricity(
        data, {3}, {"routine": RuleBook()}, incidents=4, seed=1, lag_s=3600
    )
    outcome = result["routine"]
    assert outcome.incidents == 4
    assert 0 <= outcome.detected <= 4
    assert outcome.household_months > 0.9
