"""Importing visits recorded elsewhere (docs/import-visits.md): all or nothing, errors naming
row, column and reason, idempotent re-imports, findings, and the command line."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation
from openpyxl import Workbook, load_workbook

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction
from tanfang.imports.models import ImportRun, ImportStatus
from tanfang.imports.services import import_file
from tanfang.imports.visit_columns import VISIT_COLUMNS
from tanfang.imports.visits import columns_markdown, write_visits_template
from tanfang.registry.models import Elder
from tanfang.visits.models import ElderVisitStatus, Visit
from tests.factories import make_elder, make_tree, make_user, new_id_number

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "import-visits.md"
HEADERS = [
    "外部编号",
    "身份证号",
    "姓名",
    "探访方式",
    "开始时间",
    "结束时间",
    "见到的人",
    "结果",
    "探访人",
    "组织方",
    "安全隐患",
    "服务需求",
    "同意关爱",
]


@pytest.fixture
def people():
    tree = make_tree()
    numbers = [new_id_number(dt.date(1940, 5, 1)) for _ in range(3)]
    elders = [
        make_elder(tree.communities[0], name="王秀兰", id_number=numbers[0]),
        make_elder(tree.communities[0], name="李桂英", id_number=numbers[1]),
        make_elder(tree.communities[1], name="张建国", id_number=numbers[2], gender="female"),
    ]
    return tree, elders, numbers


def line(number: str, external: str, **cells: str) -> dict[str, str]:
    base = {
        "外部编号": external,
        "身份证号": number,
        "探访方式": "电话",
        "开始时间": "2026-03-05 09:30",
        "结束时间": "2026-03-05 09:40",
        "见到的人": "老人本人",
        "结果": "见到",
        "探访人": "赵敏",
        "组织方": "驿站",
    }
    base.update(cells)
    return base


def write(path: Path, rows: list[dict[str, str]], *, encoding: str = "utf-8-sig", headers=None):
    headers = headers or HEADERS
    with path.open("w", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(headers)
        for row in rows:
            writer.writerow([row.get(h, "") for h in headers])
    return path


def run(path: Path, *, source: str = "驿站系统", actor: Any = None) -> Any:
    with translation.override("en"):
        return import_file(
            kind="visits",
            path=path,
            actor=actor,
            source=source,
            source_date=dt.date(2026, 3, 6),
            file_name=path.name,
        )


def errors_of(outcome: Any) -> list[tuple[int, str, str]]:
    return [(e.row, e.column, e.message) for e in outcome.errors]


def slashed(moment: dt.datetime) -> str:
    return f"{moment.year}/{moment.month}/{moment.day} {moment.hour}:{moment.minute:02d}"


def test_a_good_file_records_every_visit_through_the_visit_service(people, tmp_path):
    _tree, elders, numbers = people
    recent = (dt.datetime.now(SHANGHAI) - dt.timedelta(days=1)).replace(second=0, microsecond=0)
    path = write(
        tmp_path / "station.csv",
        [
            line(numbers[0], "A-1"),
            line(numbers[1], "A-2", 探访方式="入户", 开始时间=slashed(recent), 结束时间=""),
            line(numbers[2], "A-3", 结果="不在家", 见到的人="无人"),
        ],
    )
    outcome = run(path)
    assert outcome.ok, errors_of(outcome)
    assert (outcome.counts.rows, outcome.counts.created, outcome.counts.unchanged) == (3, 3, 0)
    first = Visit.objects.get(elder=elders[0])
    assert first.source == "import" and first.organised_by == "station"
    assert first.started_at == dt.datetime(2026, 3, 5, 9, 30, tzinfo=SHANGHAI)
    assert (first.visitor_name, first.mode, first.week_key, first.counts) == (
        "赵敏",
        "phone",
        "2026-W10",
        True,
    )
    second = Visit.objects.get(elder=elders[1])
    assert second.started_at == recent and second.mode == "in_home"
    assert second.ended_at == second.started_at  # no end time: the start
    assert Visit.objects.get(elder=elders[2]).counts is False  # not at home does not count
    assert ElderVisitStatus.objects.get(elder=elders[1]).last_counted_at == recent
    assert outcome.run.status == ImportStatus.SUCCEEDED
    entry = AuditEntry.objects.get(action=AuditAction.IMPORT)
    assert entry.details["kind"] == "visits" and entry.details["created"] == 3
    assert entry.area_code == _tree.subdistricts[0].code


def test_importing_the_same_visits_again_creates_nothing(people, tmp_path):
    _tree, _elders, numbers = people
    rows = [line(numbers[0], "A-1"), line(numbers[1], "")]
    assert run(write(tmp_path / "one.csv", rows)).counts.created == 2
    again = run(write(tmp_path / "renamed.csv", rows, encoding="gb18030"))
    assert again.ok, errors_of(again)
    assert (again.counts.created, again.counts.unchanged) == (0, 2)
    other_system = run(write(tmp_path / "other.csv", rows[:1]), source="社工机构系统")
    assert other_system.counts.created == 1  # the same external id in another system
    assert Visit.objects.count() == 3


def test_one_bad_row_writes_nothing_and_every_error_names_row_and_column(people, tmp_path):
    _tree, _elders, numbers = people
    stranger = new_id_number(dt.date(1941, 2, 3))
    future = (dt.datetime.now(SHANGHAI) + dt.timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    rows = [
        line(numbers[0], "B-1"),
        line(stranger, "B-2"),
        line(numbers[1], "B-3", 探访方式="上门服务"),
        line(numbers[1], "B-4", 开始时间=future, 结束时间=""),
        line(numbers[2], "B-5", 结束时间="2026-03-05 09:00"),
        line(numbers[2], "B-6", 见到的人="无人"),
        line(numbers[0], "B-7", 姓名="王秀英"),
        line(numbers[0], "B-1", 开始时间="2026-03-04 09:30"),
        line(numbers[1], "B-9", 开始时间="2026-03-05"),
        line(numbers[1], "B-10", 探访人=""),
    ]
    outcome = run(write(tmp_path / "bad.csv", rows))
    assert not outcome.ok
    assert errors_of(outcome) == [
        (3, "身份证号", "no elder in the registry has this resident ID number"),
        (
            4,
            "探访方式",
            "“上门服务” is not one of the allowed values: 电话、线上、入户、远程监测、综合",
        ),
        (5, "开始时间", "The visit cannot start in the future."),
        (6, "结束时间", "The visit cannot end before it starts."),
        (7, "见到的人", "A visit that met someone must say whom."),
        (8, "姓名", "the registry has another name for this resident ID number"),
        (
            9,
            "外部编号",
            "row 2 is the same visit (the same external id, or the same elder, start time "
            "and mode)",
        ),
        (10, "开始时间", "a time of day is needed as well, e.g. 2026-03-05 09:30"),
        (11, "探访人", "this column is required on every row"),
    ]
    assert [e.letter for e in outcome.errors[:2]] == ["B", "D"]
    assert not Visit.objects.exists()
    assert outcome.run.status == ImportStatus.REJECTED


def test_a_file_without_a_required_column_is_refused_at_its_header(people, tmp_path):
    _tree, _elders, numbers = people
    headers = [h for h in HEADERS if h != "结果"] + ["说明"]
    outcome = run(write(tmp_path / "short.csv", [line(numbers[0], "C-1")], headers=headers))
    assert errors_of(outcome) == [
        (1, "结果", "the file has no such column: it is required"),
        (1, "说明", "unknown column: the template lists the columns"),
    ]


def test_an_external_id_imported_for_another_elder_is_an_error(people, tmp_path):
    _tree, _elders, numbers = people
    run(write(tmp_path / "first.csv", [line(numbers[0], "D-1")]))
    outcome = run(write(tmp_path / "second.csv", [line(numbers[1], "D-1")]))
    assert errors_of(outcome) == [
        (2, "外部编号", "this external id was already imported as a visit of another elder")
    ]
    assert Visit.objects.count() == 1


def test_findings_open_care_actions_and_outcomes_reach_the_registry(people, tmp_path):
    tree, elders, numbers = people
    make_user(Role.COMMUNITY_WORKER, tree.communities[0])  # owns the care actions
    rows = [
        line(
            numbers[0],
            "E-1",
            探访方式="入户",
            安全隐患="燃气:软管老化；用电",
            服务需求="康复护理;其他:理发",
            同意关爱="是",
        ),
        line(
            numbers[1],
            "E-2",
            结果="死亡",
            见到的人="家属",
            开始时间="2026-03-06 08:00",
            结束时间="",
        ),
    ]
    outcome = run(write(tmp_path / "findings.csv", rows))
    assert outcome.ok, errors_of(outcome)
    visit = Visit.objects.get(elder=elders[0])
    assert visit.sections["safety"] == {
        "electricity": {"hazard": True},
        "gas": {"hazard": True, "what": "软管老化"},
    }
    assert visit.sections["needs"] == {
        "kinds": ["rehabilitation_nursing", "other"],
        "other": "理发",
    }
    assert visit.consent is True
    subjects = set(CareAction.objects.filter(visit=visit).values_list("kind", "subject"))
    assert {
        ("hazard", "gas"),
        ("hazard", "electricity"),
        ("service", "rehabilitation_nursing"),
    } <= (subjects)
    assert Elder.objects.get(pk=elders[1].pk).life_status == "deceased"


def test_bad_findings_are_errors_of_their_column(people, tmp_path):
    _tree, _elders, numbers = people
    rows = [
        line(numbers[0], "F-1", 安全隐患="漏水"),
        line(numbers[0], "F-2", 服务需求="其他"),
        line(numbers[0], "F-3", 服务需求="康复护理:每周两次"),
    ]
    outcome = run(write(tmp_path / "findings.csv", rows))
    assert [(row, column) for row, column, _m in errors_of(outcome)] == [
        (2, "安全隐患"),
        (3, "服务需求"),
        (4, "服务需求"),
    ]


def test_an_xlsx_file_with_date_cells_and_english_headers(people, tmp_path):
    _tree, elders, numbers = people
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["id_number", "mode", "started_at", "person_met", "outcome", "visitor_name"])
    cell = dt.datetime(2026, 3, 7, 23, 30, tzinfo=SHANGHAI).replace(
        tzinfo=None
    )  # as Excel keeps it
    sheet.append([numbers[2], "online", cell, "family", "met", "周"])
    path = tmp_path / "visits.xlsx"
    workbook.save(path)
    outcome = run(path)
    assert outcome.ok, errors_of(outcome)
    visit = Visit.objects.get(elder=elders[2])
    assert visit.started_at == dt.datetime(2026, 3, 7, 23, 30, tzinfo=SHANGHAI)
    assert (visit.local_date, visit.week_key, visit.organised_by) == (
        dt.date(2026, 3, 7),
        "2026-W10",
        "government",
    )


def test_a_user_imports_only_visits_of_her_own_elders(people, tmp_path):
    tree, elders, numbers = people
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    rows = [line(numbers[0], "G-1"), line(numbers[2], "G-2")]
    outcome = run(write(tmp_path / "mine.csv", rows), actor=worker)
    assert errors_of(outcome) == [
        (3, "身份证号", "this elder is registered in a community outside your area")
    ]
    assert run(write(tmp_path / "ok.csv", rows[:1]), actor=worker).counts.created == 1
    assert Visit.objects.get().elder_id == elders[0].pk


def test_the_command_imports_visits_and_reports_errors(people, tmp_path):
    _tree, _elders, numbers = people
    path = write(tmp_path / "cmd.csv", [line(numbers[0], "H-1"), line(numbers[1], "H-2")])
    out = io.StringIO()
    call_command("import", "visits", str(path), "--lang", "en", "--source", "驿站", stdout=out)
    assert out.getvalue().strip() == "2 rows read: 2 created, 0 updated, 0 unchanged."
    bad = write(tmp_path / "bad.csv", [line("110101194005019000", "H-3")])
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 errors"):
        call_command("import", "visits", str(bad), "--lang", "en", stderr=err)
    assert err.getvalue().startswith("Row 2, column “身份证号” (B): ")
    assert ImportRun.objects.filter(kind="visits").count() == 2


def test_the_template_has_every_column_and_reads_back(people, tmp_path):
    _tree, _elders, numbers = people
    path = tmp_path / "template.xlsx"
    with path.open("wb") as stream:
        write_visits_template(stream)
    through_command = tmp_path / "command.xlsx"
    call_command("import", "template", "visits", str(through_command), stdout=io.StringIO())
    assert load_workbook(through_command).sheetnames == ["探访记录", "填写说明"]
    workbook = load_workbook(path)
    header = [cell.value for cell in workbook.worksheets[0][1]]
    assert header == [column.header for column in VISIT_COLUMNS]
    sheet = workbook.worksheets[0]
    values = {
        "公民身份号码": numbers[0],
        "探访方式": "电话",
        "开始时间": "2026-03-05 10:00",
        "见到的人": "老人本人",
        "结果": "见到",
        "探访人": "赵敏",
    }
    sheet.append([values.get(h) for h in header])
    workbook.save(path)
    assert run(path).counts.created == 1
    notes = [row[1] for row in workbook.worksheets[1].iter_rows(min_row=2, values_only=True)]
    assert notes == [column.code for column in VISIT_COLUMNS]


def test_the_documented_columns_are_the_columns_read():
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- columns:start -->\n(.*?)<!-- columns:end -->", text, re.S)
    assert found is not None
    with translation.override("en"):
        assert found.group(1) == columns_markdown()
