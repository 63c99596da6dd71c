"""``tanfang import``: elders and areas from files, the template, exit status and messages."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from openpyxl import load_workbook

from tanfang.areas.models import Area
from tanfang.imports.columns import template_columns
from tanfang.imports.models import ImportRun
from tanfang.imports.synthetic import synthetic_id, write_csv
from tanfang.imports.template import DATA_SHEET, NOTES_SHEET
from tanfang.registry.models import Child, Elder, FirstContact
from tests.factories import make_tree

pytestmark = pytest.mark.django_db


def _call(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_bad_file_exits_non_zero_and_prints_every_error(tmp_path: Path) -> None:
    tree = make_tree()
    number = synthetic_id(1)[0]
    path = write_csv(
        tmp_path / "bad.csv",
        [
            {"name": "王秀兰", "id_number": number, "community_code": "110101999999"},
            {
                "name": "李桂英",
                "id_number": synthetic_id(2)[0],
                "community_code": tree.communities[0].code,
                "spouse_status": "离异",
            },
        ],
    )
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 errors"):
        call_command("import", "elders", str(path), "--lang", "en", stderr=err)
    lines = err.getvalue().splitlines()
    assert lines == [
        "Row 2, column “社区代码” (F): no community has the code 110101999999",
        "Row 3, column “配偶状况” (I): “离异” is not one of the allowed values: 无、健在、已故",
    ]
    assert not Elder.objects.exists()


def test_good_file_prints_the_counts(tmp_path: Path) -> None:
    tree = make_tree()
    path = write_csv(
        tmp_path / "ok.csv",
        [
            {
                "name": "王秀兰",
                "id_number": synthetic_id(i)[0],
                "community_code": tree.communities[0].code,
            }
            for i in range(3)
        ],
    )
    out, _err = _call(
        "elders", str(path), "--lang", "en", "--source", "民政局", "--source-date", "2026-01-05"
    )
    assert out.strip() == "3 rows read: 3 created, 0 updated, 0 unchanged."
    out, _err = _call("elders", str(path), "--lang", "en")
    assert out.splitlines()[0] == "3 rows read: 0 created, 0 updated, 3 unchanged."
    assert out.splitlines()[1].startswith("This file was imported before, on ")
    run = ImportRun.objects.order_by("id").first()
    assert run is not None and (run.source, str(run.source_date)) == ("民政局", "2026-01-05")


def test_template_round_trip(tmp_path: Path) -> None:
    tree = make_tree()
    template = tmp_path / "template.xlsx"
    _call("template", "elders", str(template))
    workbook = load_workbook(template)
    sheet = workbook[DATA_SHEET]
    headers = [cell.value for cell in sheet[1]]
    assert headers == [c.header for c in template_columns()]
    assert "公民身份号码" in headers and "子女4收养" in headers
    notes = workbook[NOTES_SHEET]
    assert notes.max_row > 40
    assert any(
        dv.sqref and "是" in (dv.formula1 or "") for dv in sheet.data_validations.dataValidation
    )

    number = synthetic_id(7)[0]
    filled = {
        "姓名": "赵淑珍",
        "公民身份号码": number,
        "社区代码": tree.communities[0].code,
        "配偶状况": "已故",
        "子女数": 1,
        "子女1姓名": "赵刚",
        "子女1是否在世": "是",
        "子女1出生年份": 1968,
        "子女1同住": "否",
        "子女1同街道": "是",
        "同住人员": "无",
        "能力评估等级": 2,
        "评估标准": "北京",
        "评估日期": "2025-03-10",
        "第一联系人姓名": "赵刚",
        "第一联系人关系": "子女",
        "第一联系人电话": "13900139000",
        "生存状态": "正常",
    }
    for header, value in filled.items():
        sheet.cell(row=2, column=headers.index(header) + 1, value=value)
    workbook.save(template)
    out, _err = _call("elders", str(template), "--lang", "en")
    assert "1 created" in out
    elder = Elder.objects.get()
    assert (elder.name, elder.capability_level, elder.household_known) == ("赵淑珍", 2, True)
    assert Child.objects.get().name == "赵刚"
    contact = FirstContact.objects.get()
    assert contact.child == Child.objects.get() and elder.first_contact == contact


def test_areas_kind_uses_the_areas_import(tmp_path: Path) -> None:
    path = tmp_path / "areas.csv"
    path.write_text(
        "code,name\n110000,北京市\n110101,东城区\n110101001,东华门街道\n", encoding="utf-8"
    )
    out, _err = _call("areas", str(path), "--lang", "en")
    assert out.startswith("3 rows read: 3 created")
    assert Area.objects.get(code="110101001").district == Area.objects.get(code="110101")
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name\n110101002,\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import", "areas", str(bad), "--lang", "en", stderr=err)
    assert "Row 2, column “name”" in err.getvalue()
    assert ImportRun.objects.filter(kind="areas").count() == 2


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError):
        _call("elders", str(tmp_path / "nothing.csv"))


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import", "elders", str(path), "--lang", "en", stderr=err)
    assert "save the file as .xlsx or CSV" in err.getvalue()
