"""Importing the administrative tree from a CSV of codes and names."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import translation

from tanfang.areas.models import Area
from tanfang.areas.services import (
    AreaImportError,
    area_create,
    areas_import_csv,
    areas_import_rows,
)
from tanfang.audit.models import AuditAction, AuditEntry

pytestmark = pytest.mark.django_db

TREE_CSV = """code,name,name_en,kind
110000,北京市,Beijing,
110101,东城区,Dongcheng,
110111,房山区,Fangshan,
110101001,东华门街道,,
110111100,青龙湖镇,,
110111200,大安山乡,,
110101001001,多福巷社区,,
110101001001001,多福巷社区第一网格,,
110111100001,青龙湖社区,,
110111100201,南关村,,
110111100202,北车营村,,居委会
110111200400,西苑,,villagers
"""


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "areas.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_import_builds_the_tree_with_levels_kinds_and_ancestors(tmp_path: Path) -> None:
    result = areas_import_csv(write(tmp_path, TREE_CSV))

    assert (result.created, result.updated, result.unchanged) == (12, 0, 0)
    city = Area.objects.get(code="110000")
    district = Area.objects.get(code="110101")
    street = Area.objects.get(code="110101001")
    community = Area.objects.get(code="110101001001")
    grid = Area.objects.get(code="110101001001001")
    assert [a.level for a in (city, district, street, community, grid)] == [
        "city",
        "district",
        "subdistrict",
        "community",
        "grid",
    ]
    assert (city.city_id, city.district_id, city.parent_id) == (city.pk, None, None)
    assert (district.parent_id, district.city_id, district.district_id) == (
        city.pk,
        city.pk,
        district.pk,
    )
    assert (street.parent_id, street.district_id, street.subdistrict_id, street.community_id) == (
        district.pk,
        district.pk,
        street.pk,
        None,
    )
    assert (community.city_id, community.district_id, community.subdistrict_id) == (
        city.pk,
        district.pk,
        street.pk,
    )
    assert community.community_id == community.pk
    assert (grid.parent_id, grid.community_id, grid.subdistrict_id, grid.city_id) == (
        community.pk,
        community.pk,
        street.pk,
        city.pk,
    )
    kinds = dict(Area.objects.values_list("code", "subdistrict_kind").filter(level="subdistrict"))
    assert kinds == {"110101001": "street", "110111100": "town", "110111200": "township"}
    communities = dict(Area.objects.filter(level="community").values_list("code", "community_kind"))
    assert communities == {
        "110101001001": "residents",
        "110111100001": "residents",
        "110111100201": "villagers",
        "110111100202": "residents",  # the kind column overrides the code's range
        "110111200400": "villagers",  # a code outside the ranges, with its kind given
    }
    assert Area.objects.get(code="110000").name_en == "Beijing"


def test_importing_again_changes_nothing_and_a_new_name_is_an_update(tmp_path: Path) -> None:
    areas_import_csv(write(tmp_path, TREE_CSV))
    before = list(Area.objects.order_by("code").values())
    audits = AuditEntry.objects.count()

    again = areas_import_csv(write(tmp_path, TREE_CSV))

    assert (again.created, again.updated, again.unchanged) == (0, 0, 12)
    assert list(Area.objects.order_by("code").values()) == before
    assert AuditEntry.objects.count() == audits  # nothing changed, nothing to record

    renamed = areas_import_rows([{"code": "110101001", "name": "东华门街道办事处"}])

    assert (renamed.created, renamed.updated) == (0, 1)
    street = Area.objects.get(code="110101001")
    assert street.name == "东华门街道办事处"
    assert street.subdistrict_kind == "street"  # a blank kind keeps the stored one


def test_an_import_that_changes_the_tree_is_audited(tmp_path: Path) -> None:
    areas_import_csv(write(tmp_path, TREE_CSV))

    entry = AuditEntry.objects.get()
    assert entry.action == AuditAction.IMPORT
    assert entry.area_code == "110000"
    assert entry.details == {"what": "areas", "created": 12, "updated": 0, "unchanged": 0}


def test_parents_may_already_be_in_the_tree(tmp_path: Path) -> None:
    areas_import_csv(write(tmp_path, TREE_CSV))

    result = areas_import_rows(
        [
            {"code": "110101001002", "name": "钱粮胡同社区"},
            {"code": "110101002", "name": "景山街道"},
        ]
    )

    assert result.created == 2
    new = Area.objects.get(code="110101001002")
    assert new.parent == Area.objects.get(code="110101001")
    assert new.district == Area.objects.get(code="110101")


def test_rows_may_come_in_any_order(tmp_path: Path) -> None:
    lines = TREE_CSV.strip().splitlines()
    areas_import_csv(write(tmp_path, "\n".join([lines[0], *reversed(lines[1:])]) + "\n"))

    assert Area.objects.get(code="110111100201").subdistrict == Area.objects.get(code="110111100")


def test_a_spreadsheet_saved_as_gb18030_is_read(tmp_path: Path) -> None:
    areas_import_csv(write(tmp_path, "code,name\n110000,北京市\n110105,朝阳区\n", "gb18030"))

    assert Area.objects.get(code="110105").name == "朝阳区"


BAD_CSV = """code,name,kind
110000,北京市,
11010A,东城区,
1101011,东城区,
110100,市辖区,
110101,东城区,street
110101000,东城区某街道,
110101001,,
110101001,东华门街道,
110101001001,多福巷社区,school
110101001500,某单位,
110102001,西长安街街道,
"""


def test_every_error_names_its_row_column_and_reason_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    with translation.override("en"), pytest.raises(AreaImportError) as caught:
        areas_import_csv(write(tmp_path, BAD_CSV))

    found = {(e.row, e.column): e.message for e in caught.value.errors}
    assert found == {
        (3, "code"): "11010A: a code has digits only",
        (4, "code"): "1101011: a code has 6, 9, 12 or 15 digits",
        (5, "code"): (
            "110100: a six-digit code is the city (ending in 0000) or a district (not ending in 00)"
        ),
        (6, "kind"): "only subdistricts and communities have a kind; leave it empty",
        (7, "code"): "110101000: the last three digits must not be 000",
        (8, "name"): "the name is missing",
        (9, "code"): "the code 110101001 is already in row 8",
        (10, "kind"): (
            "school is not a kind of Community; use one of: residents, 居委会, 社区, "
            "villagers, 村委会, 村"
        ),
        (11, "kind"): "the code 110101001500 does not say the kind of area; give it in this column",
        (12, "code"): "the parent 110102 of 110102001 is neither in this file nor in the tree",
    }
    assert [e.row for e in caught.value.errors] == sorted(e.row for e in caught.value.errors)
    with translation.override("en"):
        assert "row 3, column code: 11010A" in str(caught.value.errors[0])
    assert not Area.objects.exists()
    assert not AuditEntry.objects.exists()


def test_a_missing_parent_district_is_reported_for_each_orphan() -> None:
    with pytest.raises(AreaImportError) as caught:
        areas_import_rows(
            [{"code": "110101", "name": "东城区"}, {"code": "110101001", "name": "东华门街道"}]
        )

    assert [(e.row, e.column) for e in caught.value.errors] == [(2, "code")]
    assert "110000" in caught.value.errors[0].message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("code,nmae\n", {(1, "nmae"), (1, "name")}),
        ("name\n", {(1, "code")}),
        ("", {(1, "code")}),
    ],
)
def test_a_bad_header_is_refused(
    tmp_path: Path, header: str, expected: set[tuple[int, str]]
) -> None:
    with pytest.raises(AreaImportError) as caught:
        areas_import_csv(write(tmp_path, header + "110000,北京市\n" if header else ""))

    assert {(e.row, e.column) for e in caught.value.errors} == expected
    assert not Area.objects.exists()


def test_area_create_checks_like_an_import() -> None:
    city = area_create(code="110000", name="北京市", name_en="Beijing")
    district = area_create(code="110116", name="怀柔区")
    town = area_create(code="110116101", name="雁栖镇")

    assert (city.level, district.parent, town.subdistrict_kind) == ("city", city, "town")
    with pytest.raises(AreaImportError) as caught:
        area_create(code="110116101200", name="")
    assert [(e.row, e.column) for e in caught.value.errors] == [(1, "name")]
