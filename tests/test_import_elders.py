"""Importing the elders file: all or nothing, errors that name row, column and reason,
idempotent re-imports, newer facts win and keep their source, duplicates merged by ID."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.imports.models import ImportRun, ImportStatus
from tanfang.imports.services import import_file
from tanfang.imports.synthetic import synthetic_id, synthetic_rows, write_csv, write_xlsx
from tanfang.registry.models import (
    CapabilityAssessment,
    Child,
    Elder,
    ElderChange,
    FirstContact,
    HouseholdMember,
    Willingness,
)
from tanfang.registry.services import find_by_id_number
from tests.factories import make_tree

pytestmark = pytest.mark.django_db

JAN, MAR, FEB = dt.date(2026, 1, 5), dt.date(2026, 3, 1), dt.date(2026, 2, 1)


def row(index: int, community: Any, **cells: str) -> dict[str, str]:
    """A minimal valid row for the ``index``-th synthetic person, plus ``cells``."""
    number, _birth, gender = synthetic_id(index)
    base = {
        "name": "王秀兰",
        "id_number": number,
        "community_code": community.code,
        "gender": "男" if gender == "male" else "女",
    }
    base.update(cells)
    return base


def run(path: Path, *, source: str = "民政局", on: dt.date = JAN, **kw: Any) -> Any:
    return import_file(
        kind="elders",
        path=path,
        actor=None,
        source=source,
        source_date=on,
        file_name=path.name,
        **kw,
    )


def elder_of(index: int) -> Elder:
    return find_by_id_number(Elder.objects.all(), synthetic_id(index)[0]).get()


def test_one_bad_row_at_the_end_writes_nothing(tmp_path: Path) -> None:
    tree = make_tree()
    codes = [c.code for c in tree.communities]
    rows = list(synthetic_rows(40, codes))
    rows.append(
        row(
            999,
            tree.communities[0],
            assessment_level="2",
            assessment_scheme="北京",
            assessment_date="2025-02-30",
        )
    )
    outcome = run(write_csv(tmp_path / "partner.csv", rows))

    assert not outcome.ok and outcome.error_count == 1
    error = outcome.errors[0]
    assert (error.row, error.column) == (42, "评估日期")
    for model in (Elder, Child, HouseholdMember, FirstContact, Willingness, ElderChange):
        assert model.objects.count() == 0, model
    run_row = ImportRun.objects.get()
    assert (run_row.status, run_row.rows, run_row.error_count) == (ImportStatus.REJECTED, 41, 1)
    assert run_row.errors[0]["row"] == 42
    entry = AuditEntry.objects.get(action=AuditAction.IMPORT)
    assert entry.details["status"] == "rejected" and entry.details["errors"] == 1


def test_errors_name_row_column_and_reason_in_the_users_language(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(
        tmp_path / "bad.csv",
        [
            row(1, tree.communities[0]),
            row(2, tree.communities[0], birth_date="1940-13-01"),
            row(3, tree.communities[0], id_number="110101194005019000"),
        ],
    )
    with translation.override("en"):
        english = [str(e) for e in run(path).errors]
    with translation.override("zh-hans"):
        chinese = [str(e) for e in run(path).errors]

    assert english == [
        "Row 3, column “出生日期” (D): “1940-13-01” is not a date of the calendar",
        "Row 4, column “公民身份号码” (C): the check digit of the resident ID number is wrong",
    ]
    assert chinese[0].startswith("第 3 行") and "出生日期" in chinese[0]
    assert "不是有效的日期" in chinese[0]
    assert chinese[1].startswith("第 4 行") and "公民身份号码" in chinese[1]
    assert "校验" in chinese[1]


def test_every_error_of_the_file_is_reported_with_a_cap(tmp_path: Path) -> None:
    tree = make_tree()
    rows = [row(i, tree.communities[0], gender="男女") for i in range(1200)]
    outcome = run(write_csv(tmp_path / "many.csv", rows))
    assert outcome.error_count == 1200
    assert len(outcome.errors) == 1000 and outcome.errors_not_shown == 200
    assert outcome.errors[0].row == 2 and outcome.errors[-1].row == 1001


def test_reimporting_the_same_file_changes_nothing(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(tmp_path / "a.csv", synthetic_rows(60, [c.code for c in tree.communities]))
    first = run(path)
    assert (first.counts.created, first.counts.updated) == (60, 0)
    counts = {
        m: m.objects.count()
        for m in (
            Child,
            HouseholdMember,
            FirstContact,
            Willingness,
            CapabilityAssessment,
            ElderChange,
        )
    }
    again = run(path)
    assert (again.counts.created, again.counts.updated, again.counts.unchanged) == (0, 0, 60)
    assert {m: m.objects.count() for m in counts} == counts
    assert again.previous == first.run


def test_a_later_file_updates_a_fact_and_keeps_the_history(tmp_path: Path) -> None:
    tree = make_tree()
    run(
        write_csv(
            tmp_path / "jan.csv",
            [row(1, tree.communities[0], daily_companionship="否", address="示例路1号")],
        )
    )
    outcome = run(
        write_csv(tmp_path / "mar.csv", [row(1, tree.communities[0], daily_companionship="是")]),
        source="卫健委",
        on=MAR,
    )
    assert (outcome.counts.updated, outcome.counts.unchanged) == (1, 0)
    elder = elder_of(1)
    assert elder.daily_companionship is True
    assert elder.fact_sources["daily_companionship"] == {"source": "卫健委", "date": "2026-03-01"}
    assert elder.fact_sources["address"] == {"source": "民政局", "date": "2026-01-05"}
    history = list(ElderChange.objects.filter(elder=elder).order_by("id"))
    assert [(c.source, c.note) for c in history] == [("民政局", "created"), ("卫健委", "")]
    assert history[0].changes["daily_companionship"] == [None, False]
    assert history[1].changes == {"daily_companionship": [False, True]}


def test_an_older_file_does_not_overwrite_newer_facts(tmp_path: Path) -> None:
    tree = make_tree()
    run(
        write_csv(
            tmp_path / "mar.csv",
            [row(1, tree.communities[0], spouse_status="已故", children_count="0")],
        ),
        on=MAR,
    )
    outcome = run(
        write_csv(
            tmp_path / "jan.csv",
            [
                row(
                    1,
                    tree.communities[1],
                    spouse_status="健在",
                    children_count="1",
                    child1_name="李明",
                )
            ],
        ),
        source="old",
        on=JAN,
    )
    assert outcome.counts.unchanged == 1
    elder = elder_of(1)
    assert elder.spouse_status == "deceased" and elder.community == tree.communities[0]
    assert elder.children_known and not Child.objects.exists()


def test_rows_of_the_same_elder_are_merged(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(
        tmp_path / "dup.csv",
        [
            row(1, tree.communities[0], phone="13800001111"),
            row(2, tree.communities[0]),
            row(
                1,
                tree.communities[0],
                address="示例路9号",
                willing="是",
                willingness_date="2024-05-20",
                willingness_recorder="李红",
            ),
        ],
    )
    outcome = run(path)
    assert outcome.ok and outcome.counts.created == 2 and outcome.counts.rows == 3
    elder = elder_of(1)
    assert (elder.phone_masked, elder.address, elder.willing_to_be_visited) == (
        "138****1111",
        "示例路9号",
        True,
    )
    assert Elder.objects.count() == 2


def test_rows_of_the_same_elder_that_disagree_name_both_rows(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(
        tmp_path / "conflict.csv",
        [
            row(1, tree.communities[0], address="示例路1号"),
            row(2, tree.communities[0]),
            row(1, tree.communities[0], address="示例路2号"),
        ],
    )
    with translation.override("en"):
        outcome = run(path)
    assert not Elder.objects.exists()
    assert [(e.row, e.column) for e in outcome.errors] == [(4, "居住地址")]
    assert "row 2" in outcome.errors[0].message


def test_a_new_elder_needs_a_name_and_a_community(tmp_path: Path) -> None:
    tree = make_tree()
    first = row(1, tree.communities[0])
    del first["community_code"]
    outcome = run(write_csv(tmp_path / "x.csv", [first]))
    assert [(e.row, e.column) for e in outcome.errors] == [(2, "姓名")]
    run(write_csv(tmp_path / "y.csv", [row(1, tree.communities[0])]))
    assert run(write_csv(tmp_path / "z.csv", [first]), on=MAR).ok


def test_gb18030_csv_from_excel_in_china(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(
        tmp_path / "gbk.csv",
        [row(1, tree.communities[0], name="张淑珍", address="东城区示例胡同3号")],
        encoding="gb18030",
    )
    outcome = run(path)
    assert outcome.ok, outcome.errors
    elder = elder_of(1)
    assert (elder.name, elder.address) == ("张淑珍", "东城区示例胡同3号")


def test_english_codes_as_headers(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(
        tmp_path / "en.csv",
        [row(1, tree.communities[0], spouse_status="alive")],
        english_headers=True,
    )
    assert run(path).ok
    assert elder_of(1).spouse_status == "alive"


def test_xlsx_file(tmp_path: Path) -> None:
    tree = make_tree()
    rows = list(synthetic_rows(30, [c.code for c in tree.communities]))
    outcome = run(write_xlsx(tmp_path / "partner.xlsx", rows))
    assert outcome.ok and outcome.counts.created == 30
    assert Child.objects.count() == sum(int(r["children_count"]) for r in rows)
    assert FirstContact.objects.filter(is_current=True).count() == sum(
        1 for r in rows if r.get("first_contact_name")
    )


def test_dry_run_counts_and_writes_nothing(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(tmp_path / "a.csv", synthetic_rows(10, [c.code for c in tree.communities]))
    outcome = run(path, dry_run=True)
    assert outcome.counts.created == 10 and not Elder.objects.exists()
    assert ImportRun.objects.get().status == ImportStatus.DRY_RUN


def test_successful_import_is_recorded_and_audited(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(tmp_path / "a.csv", [row(i, tree.communities[0]) for i in range(3)])
    outcome = run(path)
    run_row = ImportRun.objects.get()
    assert (run_row.status, run_row.kind, run_row.via, run_row.by, run_row.by_name) == (
        ImportStatus.SUCCEEDED,
        "elders",
        "command",
        None,
        "system",
    )
    assert (run_row.created, run_row.rows, run_row.source, run_row.source_date) == (
        3,
        3,
        "民政局",
        JAN,
    )
    assert len(run_row.file_sha256) == 64 and run_row.finished_at is not None
    entry = AuditEntry.objects.get(action=AuditAction.IMPORT)
    assert entry.actor_username == "system"
    assert entry.area_code == tree.communities[0].code
    assert entry.details["created"] == 3 and entry.details["run"] == outcome.run.pk


def test_contradictions_ages_and_places_are_errors(tmp_path: Path) -> None:
    from tanfang.areas.models import AreaLevel
    from tanfang.registry.synthetic import synthetic_id_number
    from tests.factories import make_area

    tree = make_tree()
    home, other = tree.communities[0], tree.communities[1]
    grid = make_area(f"{other.code}001", "第一网格", AreaLevel.GRID, other)
    young = synthetic_id_number("110101", dt.date(1990, 1, 1), 1, "male")
    cases = [
        row(1, home, grid_code=grid.code),
        row(2, home, grid_code="110101001001999"),
        row(3, home, spouse_status="无", spouse_lives_with="是"),
        row(4, home, disability_status="无", disability_grade="2"),
        row(5, home, extremely_poor="否", dispersed_supported="是"),
        row(
            6,
            home,
            contract_kind="驿站",
            contract_provider="示例驿站",
            contract_group="其他",
            contract_date="2025-01-01",
            contract_end_date="2024-01-01",
        ),
        row(7, home, assessment_level="4", assessment_scheme="北京", assessment_date="2025-01-01"),
        {"name": "青年", "id_number": young, "community_code": home.code},
    ]
    with translation.override("en"):
        outcome = run(write_csv(tmp_path / "c.csv", cases))
    assert [(e.row, e.column) for e in outcome.errors] == [
        (2, "网格代码"),
        (3, "网格代码"),
        (4, "与配偶同住"),
        (5, "残疾等级"),
        (6, "分散供养"),
        (7, "签约到期日期"),
        (8, "能力评估等级"),
        (9, "公民身份号码"),
    ]
    assert "not in the row's community" in outcome.errors[0].message
    assert "aged 60 or over" in outcome.errors[-1].message
    assert not Elder.objects.exists()


def test_reading_in_worker_processes_gives_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tanfang.imports import parsing

    monkeypatch.setattr(parsing, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(parsing, "BATCH", 7)
    tree = make_tree()
    rows = list(synthetic_rows(50, [c.code for c in tree.communities]))
    rows[10]["birth_date"] = "1900-13-01"
    rows[30] = dict(rows[3], address="另一个地址")
    bad = write_csv(tmp_path / "bad.csv", rows)
    with translation.override("en"):
        serial = [str(e) for e in run(bad).errors]
        parallel = [str(e) for e in run(bad, parallel=True).errors]
    assert parallel == serial and len(serial) == 2

    good = write_csv(tmp_path / "good.csv", synthetic_rows(50, [c.code for c in tree.communities]))
    outcome = run(good, parallel=True)
    assert outcome.ok and outcome.counts.created == 50 and Elder.objects.count() == 50
