"""Synthetic elders files: made-up people in the import layout, for tests, demos and the
benchmark. Deterministic for a seed; ID numbers come from ``registry.synthetic`` (valid check
digits, sequence codes no real person holds), names from a small list of common characters.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tanfang.imports.columns import Column, template_columns
from tanfang.registry.synthetic import synthetic_id_number

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "秀英桂兰玉珍淑华建国志强明德文凤春梅玉兰金凤淑珍振华永福德福宝山素芳红霞丽娟伟平"
_FIRST_BIRTH = dt.date(1930, 1, 1)
_BIRTH_DAYS = 12784  # to the end of 1964: everyone is over 60
_PER_DAY = 100  # IDs per birth date: 50 sequence codes x 2 genders
# Place codes python-stdnum accepts for every birth year (it checks that the code existed in
# the year of birth, so the districts created from counties after 1986 would be refused).
PLACES = ("110101", "110102", "110105", "110106", "110108")


def synthetic_id(index: int) -> tuple[str, dt.date, str]:
    """The ``index``-th synthetic ID number: distinct for index < 1,278,400."""
    place = PLACES[index % len(PLACES)]
    day_index, slot = divmod(index, _PER_DAY)
    birth = _FIRST_BIRTH + dt.timedelta(days=(day_index * 7919) % _BIRTH_DAYS)
    gender = "male" if slot % 2 else "female"
    return synthetic_id_number(place, birth, slot // 2, gender), birth, gender


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _phone(rng: random.Random) -> str:
    return "13" + "".join(str(rng.randrange(10)) for _ in range(9))


def synthetic_rows(
    count: int, communities: Sequence[str], *, seed: int = 1, start: int = 0
) -> Iterator[dict[str, Any]]:
    """``count`` elders as {column code: cell text}, spread over the community codes."""
    rng = random.Random(seed)
    for index in range(start, start + count):
        community = communities[index % len(communities)]
        number, birth, gender = synthetic_id(index)
        surname = _name(rng)
        row: dict[str, Any] = {
            "name": surname,
            "gender": "男" if gender == "male" else "女",
            "id_number": number,
            "birth_date": birth.isoformat(),
            "phone": _phone(rng),
            "community_code": community,
            "address": f"示例路{rng.randrange(1, 300)}号{rng.randrange(1, 20)}单元",
            "spouse_status": rng.choice(("无", "健在", "已故", "已故")),
            "relatives_same_subdistrict": rng.choice(("是", "否")),
            "daily_companionship": rng.choice(("是", "否")),
            "life_status": "正常",
        }
        if row["spouse_status"] == "健在":
            row["spouse_lives_with"] = rng.choice(("是", "否"))
        children = rng.choice((0, 1, 1, 2, 2, 3))
        row["children_count"] = str(children)
        for n in range(1, children + 1):
            row[f"child{n}_name"] = surname[0] + rng.choice(GIVEN) + rng.choice(GIVEN)
            row[f"child{n}_alive"] = "是"
            row[f"child{n}_birth_year"] = str(birth.year + rng.randrange(20, 35))
            row[f"child{n}_lives_with"] = rng.choice(("是", "否", "否"))
            row[f"child{n}_same_subdistrict"] = rng.choice(("是", "否"))
            row[f"child{n}_can_support"] = "是"
        row["household"] = "配偶:80" if row.get("spouse_lives_with") == "是" else "无"
        if rng.random() < 0.3:
            row.update(
                assessment_level=str(rng.randrange(1, 4)),
                assessment_scheme="北京",
                assessment_date="2025-03-10",
            )
        if rng.random() < 0.1:
            row.update(
                disability_status="有",
                disability_grade=str(rng.randrange(1, 5)),
                disability_type=rng.choice(("肢体", "视力", "智力")),
            )
        if rng.random() < 0.1:
            row.update(
                contract_kind="驿站",
                contract_provider="示例社区养老服务驿站",
                contract_group="兜底保障",
                contract_date="2024-07-01",
            )
        if rng.random() < 0.8:
            row.update(
                willing=rng.choice(("是", "是", "否")),
                willingness_date="2024-05-20",
                willingness_recorder="李红",
            )
        if children:
            row.update(
                first_contact_name=row["child1_name"],
                first_contact_relation="子女",
                first_contact_phone=_phone(rng),
            )
        yield row


def _columns(child_groups: int) -> list[Column]:
    return template_columns(child_groups)


def write_csv(
    path: Path,
    rows: Iterable[dict[str, Any]],
    *,
    encoding: str = "utf-8-sig",
    child_groups: int = 3,
    english_headers: bool = False,
) -> Path:
    """Write rows (dicts of column codes) under the template's headers."""
    columns = _columns(child_groups)
    with path.open("w", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([c.code if english_headers else c.header for c in columns])
        for row in rows:
            writer.writerow([row.get(c.code, "") for c in columns])
    return path


def write_xlsx(path: Path, rows: Iterable[dict[str, Any]], *, child_groups: int = 3) -> Path:
    """Write rows as an xlsx workbook (streamed: openpyxl's write-only mode)."""
    from openpyxl import Workbook

    columns = _columns(child_groups)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("老年人")
    sheet.append([c.header for c in columns])
    for row in rows:
        sheet.append([row.get(c.code) or None for c in columns])
    workbook.save(path)
    return path
