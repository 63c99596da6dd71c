"""Ingestion: every reading judged on its own, units, late and out-of-order readings, the
same delivery twice, partner isolation, files with a partner's mapping, the commands."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import translation

from tanfang.accounts.models import Role
from tanfang.monitoring import store
from tanfang.monitoring.checks import parse_timestamps
from tanfang.monitoring.files import FileError, ingest_file
from tanfang.monitoring.ingest import batch_repeated, ingest_frame, quarantine_scan, row_message
from tanfang.monitoring.models import (
    DataPartner,
    IngestBatch,
    IngestSource,
    Meter,
    QuarantinedReading,
)
from tanfang.monitoring.partners import partner_for_token
from tests.factories import make_tree, make_user

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 5, 2, 12, 0, tzinfo=dt.UTC)
D0 = int(dt.datetime(2024, 5, 1, tzinfo=dt.UTC).timestamp())


@pytest.fixture(autouse=True)
def store_dir(settings: Any, tmp_path: Path) -> Path:
    settings.MONITORING_DIR = tmp_path / "monitoring"
    return Path(settings.MONITORING_DIR)


@pytest.fixture
def water() -> DataPartner:
    partner = DataPartner.objects.create(code="bj-water", name="自来水", kind="water_utility")
    Meter.objects.create(
        meter_id="W1", partner=partner, utility="water", register="interval", unit="L",
        interval_minutes=15,
    )  # fmt: skip
    Meter.objects.create(
        meter_id="W2", partner=partner, utility="water", register="cumulative", unit="m3",
        interval_minutes=60, rollover=10_000,
    )  # fmt: skip
    return partner


@pytest.fixture
def power() -> DataPartner:
    partner = DataPartner.objects.create(code="bj-power", name="电力", kind="power_utility")
    Meter.objects.create(
        meter_id="E1", partner=partner, utility="electricity", register="interval", unit="kWh",
        interval_minutes=60,
    )  # fmt: skip
    return partner


def readings(*rows: tuple[Any, Any, Any]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter_id": [r[0] for r in rows],
            "ts": [r[1] for r in rows],
            "value": [r[2] for r in rows],
        },
        schema={"meter_id": pl.String, "ts": pl.String, "value": pl.String},
    )


def push(partner: DataPartner, frame: pl.DataFrame, **kw: Any) -> IngestBatch:
    return ingest_frame(partner, frame, source=IngestSource.HTTP, now=NOW, **kw)


def stored() -> list[tuple[str, int, float]]:
    got = store.readings_scan().sort("meter_id", "ts").collect()
    return [(m, t, v) for m, t, v, _b in got.iter_rows()]


def set_aside(batch: IngestBatch) -> list[tuple[int, str, str]]:
    return list(
        QuarantinedReading.objects.filter(batch=batch)
        .order_by("row")
        .values_list("row", "reason", "detail")
    )


# --------------------------------------------------------------------------- one delivery


def test_each_reading_is_judged_on_its_own(water: DataPartner, power: DataPartner) -> None:
    frame = readings(
        ("W1", "2024-05-01T08:15:00+08:00", "12.5"),  # 1 good
        ("W9", "2024-05-01T08:15:00+08:00", "1"),  # 2 unknown meter
        ("W1", "yesterday", "1"),  # 3 not a time
        ("W1", "2024-05-01T08:30:00", "1"),  # 4 no offset
        ("W1", "2024-05-01T08:45:00+08:00", "lots"),  # 5 not a number
        ("W1", "2024-05-02T12:10:00Z", "1"),  # 6 ten minutes in the future
        ("W1", "2024-05-01T09:00:00+08:00", "-3"),  # 7 negative usage
        ("W1", "2024-05-01T09:15:00+08:00", "5000"),  # 8 > 750 L in a quarter-hour
        ("E1", "2024-05-01T09:15:00+08:00", "1"),  # 9 another partner's meter
        ("W2", str(D0 + 3600), "123.456"),  # 10 good, epoch seconds, m3 register
        ("W2", "1999-12-31T23:00:00Z", "1"),  # 11 before 2000
        ("W2", "2024-05-01T02:00:00Z", "-1"),  # 12 a register below zero
        ("W2", "2024-05-01T03:00:00Z", "20000"),  # 13 above the register's capacity
        ("W1", "2024-05-02T12:04:00Z", ""),  # 14 empty value
        ("W1", "2024-05-02T12:04:00Z", "700"),  # 15 good: 4 minutes ahead is tolerated
    )
    batch = push(water, frame, name="mixed")
    assert (batch.rows, batch.stored, batch.duplicates, batch.quarantined) == (15, 3, 0, 12)
    assert batch.rows == batch.stored + batch.duplicates + batch.quarantined
    assert batch.reasons == {
        "unknown_meter": 2,
        "bad_timestamp": 3,
        "bad_value": 2,
        "future_timestamp": 1,
        "negative_usage": 2,
        "absurd_value": 2,
    }
    assert set_aside(batch) == [
        (2, "unknown_meter", ""),
        (3, "bad_timestamp", ""),
        (4, "bad_timestamp", "no_offset"),
        (5, "bad_value", ""),
        (6, "future_timestamp", ""),
        (7, "negative_usage", ""),
        (8, "absurd_value", "limit:750.0"),
        (9, "unknown_meter", ""),
        (11, "bad_timestamp", "too_early"),
        (12, "negative_usage", "register"),
        (13, "absurd_value", "limit:10000000.0"),
        (14, "bad_value", "empty"),
    ]
    t1 = int(dt.datetime(2024, 5, 1, 0, 15, tzinfo=dt.UTC).timestamp())
    assert stored() == [
        ("W1", t1, 12.5),
        ("W1", int(NOW.timestamp()) + 240, 700.0),
        ("W2", D0 + 3600, 123_456.0),  # m3 -> L
    ]
    # Every reading set aside is kept in the store, as it was sent.
    kept = quarantine_scan("bj-water").collect()
    assert kept.height == 12
    assert kept.filter(pl.col("row") == 5).select("ts", "value", "reason").row(0) == (
        "2024-05-01T08:45:00+08:00",
        "lots",
        "bad_value",
    )
    assert batch.store_paths[-1] == f"quarantine/partner=bj-water/{batch.pk}.parquet"
    assert batch.first_ts == dt.datetime.fromtimestamp(t1, dt.UTC)
    assert batch.last_ts == NOW + dt.timedelta(minutes=4)


def test_messages_name_the_row_the_column_and_the_reason() -> None:
    with translation.override("en"):
        assert row_message(4, "bad_timestamp", "no_offset", "抄表时间") == (
            "Row 4, column “抄表时间”: the time has no UTC offset (e.g. 2024-05-01T08:00:00+08:00)"
        )
        assert row_message(8, "absurd_value", "limit:750.0") == (
            "Row 8, column “value”: above the physical limit (750.0 L or Wh)"
        )
        assert row_message(2, "unknown_meter") == (
            "Row 2, column “meter_id”: unknown meter, or a meter of another partner"
        )


def test_a_partner_cannot_push_another_partners_meter(
    water: DataPartner, power: DataPartner
) -> None:
    batch = push(power, readings(("W1", str(D0 + 900), "5"), ("E1", str(D0 + 3600), "1.5")))
    assert batch.reasons == {"unknown_meter": 1}
    assert stored() == [("E1", D0 + 3600, 1500.0)]  # kWh -> Wh
    assert quarantine_scan("bj-water").collect().is_empty()
    assert quarantine_scan("bj-power").collect()["meter_id"].to_list() == ["W1"]


def test_nothing_good_nothing_stored_and_still_a_batch(water: DataPartner) -> None:
    batch = push(water, readings(("nope", "x", "y")))
    assert (batch.rows, batch.stored, batch.quarantined) == (1, 0, 1)
    assert batch.first_ts is None
    assert stored() == []
    empty = push(water, readings())
    assert (empty.rows, empty.stored, empty.store_paths) == (0, 0, [])
    newcomer = DataPartner.objects.create(code="new", name="新", kind="other")
    none_yet = push(newcomer, readings(("W1", str(D0 + 900), "5")), unit="m3")
    assert none_yet.reasons == {"unknown_meter": 1}


def test_duplicates_within_a_delivery_are_one_reading_the_larger_value(
    water: DataPartner,
) -> None:
    batch = push(
        water,
        readings(
            ("W1", str(D0 + 900), "5"),
            ("W1", "2024-05-01T00:15:00Z", "5"),  # the same moment, written otherwise
            ("W1", str(D0 + 900), "7"),
            ("W1", str(D0 + 1800), "1"),
        ),
    )
    assert (batch.stored, batch.duplicates, batch.quarantined) == (2, 2, 0)
    assert stored() == [("W1", D0 + 900, 7.0), ("W1", D0 + 1800, 1.0)]


def test_more_than_a_thousand_set_aside(water: DataPartner) -> None:
    rows = [("W1", str(D0 + 900 * (i + 1)), "-1") for i in range(1500)]
    batch = push(water, readings(*rows, ("W1", str(D0), "2")))
    assert (batch.stored, batch.quarantined) == (1, 1500)
    assert QuarantinedReading.objects.filter(batch=batch).count() == 1000
    assert quarantine_scan().collect().height == 1500


# --------------------------------------------------------------------------- idempotency


def test_the_same_content_twice_is_one_batch(water: DataPartner, store_dir: Path) -> None:
    frame = readings(("W1", str(D0 + 900), "5"), ("W1", "bad", "1"))
    digest = hashlib.sha256(b"the body").hexdigest()
    first = push(water, frame, content_sha256=digest)
    files = sorted(store_dir.rglob("*.parquet"))
    second = push(water, frame, content_sha256=digest)
    assert second.pk == first.pk
    assert batch_repeated(second) and not batch_repeated(first)
    assert sorted(store_dir.rglob("*.parquet")) == files
    assert IngestBatch.objects.count() == 1
    assert QuarantinedReading.objects.count() == 1
    # The same readings in another delivery: another batch, still one reading each.
    third = push(water, frame, content_sha256=hashlib.sha256(b"other").hexdigest())
    assert third.pk != first.pk and third.stored == 1
    assert stored() == [("W1", D0 + 900, 5.0)]


def test_another_partner_may_send_the_same_bytes(water: DataPartner, power: DataPartner) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    a = push(water, readings(("W1", str(D0 + 900), "5")), content_sha256=digest)
    b = push(power, readings(("E1", str(D0 + 3600), "5")), content_sha256=digest)
    assert a.pk != b.pk and not batch_repeated(b)


@pytest.mark.django_db(transaction=True)
def test_the_same_file_at_once_from_many_threads_is_one_batch(
    water: DataPartner, tmp_path: Path
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every write: concurrent deliveries need PostgreSQL")
    path = tmp_path / "r.csv"
    path.write_text("meter_id,ts,value\nW1,1714522500,5\n", encoding="utf-8")
    threads = 6
    barrier = threading.Barrier(threads)
    batches: list[int] = []
    failures: list[BaseException] = []

    def send() -> None:
        try:
            barrier.wait(timeout=30)
            batches.append(ingest_file(water, path, now=NOW).pk)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not failures, failures
    assert len(set(batches)) == 1 and len(batches) == threads
    assert IngestBatch.objects.count() == 1
    assert len(list(store.day_files(dt.date(2024, 5, 1)))) == 1


# --------------------------------------------------------------------------- time and units


def test_late_and_out_of_order_readings_land_in_their_own_days(water: DataPartner) -> None:
    later = [("W1", str(D0 + 86_400 + 3600 * (4 - i)), str(i)) for i in range(4)]
    earlier = [("W1", str(D0 + 900 * i + 900), str(i)) for i in range(3)][::-1]
    push(water, readings(*later, *earlier[:1]))
    push(water, readings(*earlier[1:]))
    assert [d.isoformat() for d in store.stored_days()] == ["2024-05-01", "2024-05-02"]
    got = stored()
    assert [t for _m, t, _v in got] == sorted(t for _m, t, _v in got)
    assert len(got) == 7


def test_timestamps_in_every_accepted_form() -> None:
    moment = D0 + 8 * 3600
    forms = pl.Series(
        [
            "2024-05-01T16:00:00+08:00",
            "2024-05-01 16:00:00+08:00",
            "2024-05-01T08:00:00Z",
            "2024-05-01T08:00:00.750Z",
            "2024-05-01T16:00+08:00",
            "2024-05-01T16:00:00+0800",
            str(moment),
            f"{moment}.9",
            " 2024-05-01T08:00:00Z ",
        ]
    )
    assert parse_timestamps(forms).to_list() == [moment] * len(forms)
    naive = pl.Series(["2024-05-01T16:00:00", "2024-05-01 16:00", "", None, "16:00"])
    assert parse_timestamps(naive).to_list() == [None] * 5
    assert parse_timestamps(naive, tz="Asia/Shanghai").to_list()[:2] == [moment, moment]
    assert parse_timestamps(pl.Series([moment, None])).to_list() == [moment, None]
    assert parse_timestamps(pl.Series([f"{moment}000"]), ts_format="epoch_ms").to_list() == [moment]
    local = pl.Series(["2024/05/01 16:00"])
    assert parse_timestamps(local, ts_format="%Y/%m/%d %H:%M").to_list() == [moment]


def test_units_become_litres_and_watt_hours(water: DataPartner, power: DataPartner) -> None:
    push(power, readings(("E1", str(D0 + 3600), "0.25")))
    push(power, readings(("E1", str(D0 + 7200), "250")), unit="Wh")
    frame = readings(("E1", str(D0 + 10_800), "2"), ("E1", str(D0 + 14_400), "2"))
    batch = push(power, frame.with_columns(unit=pl.Series(["kWh", "m3"])))
    assert batch.reasons == {"bad_value": 1}
    assert set_aside(batch) == [(2, "bad_value", "unit:m3")]
    assert stored() == [
        ("E1", D0 + 3600, 250.0),
        ("E1", D0 + 7200, 250.0),
        ("E1", D0 + 10_800, 2000.0),
    ]


def test_cumulative_registers_become_usage_through_hourly_build(water: DataPartner) -> None:
    # Hourly m3 register: use, a reset when the meter was replaced, use again.
    values = ["100.000", "100.010", "100.250", "0.002", "0.012"]
    push(water, readings(*[("W2", str(D0 + 3600 * (i + 1)), v) for i, v in enumerate(values)]))
    built = store.hourly_build("2024-05-01")
    assert built.meters == 1
    hourly = store.hourly_scan(meter_ids=["W2"]).sort("hour").collect()
    usage = [round(u, 3) for u in hourly["usage"].to_list()]
    assert usage == [10.0, 240.0, 2.0, 10.0]  # litres; the first reading has no predecessor
    assert hourly["hour"].to_list() == [D0 + 3600 * h for h in (1, 2, 3, 4)]


# --------------------------------------------------------------------------- files


def test_csv_and_parquet_files_in_the_documented_format(water: DataPartner, tmp_path: Path) -> None:
    csv = tmp_path / "w.csv"
    csv.write_text(
        "meter_id,ts,value,extra\n"
        "W1,2024-05-01T08:15:00+08:00,12.5,x\n"
        "W1,2024-05-01T08:30:00+08:00,abc,y\n",
        encoding="utf-8",
    )
    batch = ingest_file(water, csv, now=NOW)
    assert (batch.source, batch.name, batch.stored) == ("file", "w.csv", 1)
    assert set_aside(batch) == [(3, "bad_value", "")]  # the header is row 1
    parquet = tmp_path / "w.parquet"
    pl.DataFrame({"meter_id": ["W1"], "ts": [D0 + 1800], "value": [3.0]}).write_parquet(parquet)
    assert ingest_file(water, parquet, now=NOW).stored == 1
    again = ingest_file(water, csv, now=NOW)
    assert again.pk == batch.pk and batch_repeated(again)


def test_a_partners_mapping_gbk_local_times_and_cubic_metres(
    water: DataPartner, tmp_path: Path
) -> None:
    water.column_mapping = {
        "water": {
            "meter_id": "表号",
            "ts": "抄表时间",
            "value": "读数",
            "unit": "m3",
            "ts_format": "%Y-%m-%d %H:%M:%S",
            "tz": "Asia/Shanghai",
            "delimiter": ";",
            "encoding": "gbk",
        }
    }
    water.save(update_fields=["column_mapping"])
    path = tmp_path / "水表.csv"
    text = "表号;抄表时间;读数;备注\nW1;2024-05-01 08:15:00;0.0125;正常\nW1;2024/05/01;0.1;坏\n"
    path.write_bytes(text.encode("gbk"))
    batch = ingest_file(water, path, now=NOW)
    assert (batch.stored, batch.reasons) == (1, {"bad_timestamp": 1})
    assert stored() == [("W1", D0 + 900, 12.5)]


def test_files_that_cannot_be_read_say_why(water: DataPartner, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("meter,ts,value\nW1,1,2\n", encoding="utf-8")
    with translation.override("en"), pytest.raises(FileError, match="“meter_id” is missing"):
        ingest_file(water, path)
    water.column_mapping = {"water": {"meter_id": "m"}, "gas": {"meter_id": "g"}}
    with translation.override("en"), pytest.raises(FileError, match="several utilities"):
        ingest_file(water, path)
    water.column_mapping = {"*": {"colour": "red"}}
    with translation.override("en"), pytest.raises(FileError, match="unknown key “colour”"):
        ingest_file(water, path)
    assert not IngestBatch.objects.exists()


# --------------------------------------------------------------------------- commands


def test_the_import_command_reports_rows_and_the_second_import(
    water: DataPartner, tmp_path: Path
) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "meter_id,ts,value\nW1,2024-05-01T08:15:00+08:00,1\nW9,2024-05-01T08:15:00+08:00,1\n"
        "W1,2024-05-01T08:30:00,2\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    call_command(
        "readings", "--lang", "en", "import", str(path), "--partner", "bj-water", stdout=out
    )
    text = out.getvalue()
    assert "3 readings, 1 stored, 0 duplicates, 2 set aside" in text
    assert "Row 3, column “meter_id”: unknown meter" in text
    assert "Row 4, column “ts”: the time has no UTC offset" in text
    out = io.StringIO()
    call_command(
        "readings", "--lang", "en", "import", str(path), "--partner", "bj-water", stdout=out
    )
    assert "imported before as batch" in out.getvalue()
    out = io.StringIO()
    call_command("readings", "--lang", "en", "report", stdout=out)
    report = out.getvalue()
    assert "自来水 (bj-water): 1 batches, 3 readings, 1 stored" in report
    assert "unknown_meter: 1" in report and "bad_timestamp: 1" in report
    with pytest.raises(CommandError, match="no partner"):
        call_command("readings", "--lang", "en", "import", str(path), "--partner", "nobody")


def test_store_commands(water: DataPartner) -> None:
    push(water, readings(("W1", str(D0 + 900), "1")))
    push(water, readings(("W1", str(D0 + 900), "2")))
    out = io.StringIO()
    call_command("readings", "compact", "--before", "2024-05-02", stdout=out)
    assert "2024-05-01: 2 files, 2 -> 1 readings" in out.getvalue()
    out = io.StringIO()
    call_command("readings", "hourly", "--day", "2024-05-01", stdout=out)
    assert "2024-05-01: 1 meters, 1 hours" in out.getvalue()
    out = io.StringIO()
    call_command("readings", "--lang", "en", "retain", "--now", "2024-05-02T00:00Z", stdout=out)
    assert "Raw days deleted: 0" in out.getvalue()


def test_partners_commands_issue_a_token_shown_once() -> None:
    tree = make_tree()
    make_user(Role.DATA_PARTNER, tree.city, username="shui")
    out = io.StringIO()
    call_command(
        "partners", "add", "gas-co", "--name", "燃气", "--kind", "gas_utility", "--contact",
        "shui", stdout=out,
    )  # fmt: skip
    partner = DataPartner.objects.get(code="gas-co")
    out = io.StringIO()
    call_command("partners", "token", "gas-co", stdout=out)
    token = out.getvalue().strip()
    partner.refresh_from_db()
    assert partner.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(DataPartner.objects.values().get(pk=partner.pk))
    assert partner_for_token(token) == partner
    out = io.StringIO()
    call_command("partners", "token", "gas-co", stdout=out)
    assert partner_for_token(token) is None  # replaced
    assert partner_for_token(out.getvalue().strip()) == partner
    DataPartner.objects.create(code="lonely", name="无人", kind="other")
    with translation.override("en"):
        with pytest.raises(CommandError, match="no contact"):
            call_command("partners", "token", "lonely")
        with pytest.raises(CommandError, match="exists already"):
            call_command("partners", "add", "gas-co", "--name", "x", "--kind", "other")
