"""The demo city's administrative tree: Beijing's 16 real districts, generated below them.

The districts and their GB/T 2260 codes are real (``tanfang/data/beijing-districts.csv``).
Subdistricts and communities are generated: streets (街道) with residents' committees in the
six urban-core districts; in the ten outer districts a street or two around the district seat,
then towns (镇) and a few townships (乡) whose communities are mostly villagers' committees.
Their codes follow the statistical division ranges (streets 001–099, towns 100–199,
townships 200–399; residents' committees 001–199, villagers' committees 200–399).

The size of the tree follows the number of elders, so a small demo is not spread thin and a
million-elder benchmark has about as many communities as the real city (some 7,000).
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tanfang.demo import names

CITY_CODE = "110000"
# 东城, 西城, 朝阳, 丰台, 石景山, 海淀: entirely streets.
URBAN_CORE: frozenset[str] = frozenset({"110101", "110102", "110105", "110106", "110107", "110108"})
DISTRICT_COUNT = 16


def district_rows() -> list[dict[str, str]]:
    """The city and its 16 districts, from the packaged CSV."""
    text = resources.files("tanfang.data").joinpath("beijing-districts.csv").read_text("utf-8")
    return [dict(row) for row in csv.DictReader(text.splitlines())]


@dataclass(frozen=True, slots=True)
class TreeShape:
    subdistricts_per_district: int
    communities_per_subdistrict: int


def tree_shape(elders: int) -> TreeShape:
    """About 150 elders a community, between 9 and ~440 communities a district."""
    communities = min(max(elders / 150, DISTRICT_COUNT * 9), 7000)
    per_district = communities / DISTRICT_COUNT
    subdistricts = min(max(round(math.sqrt(per_district / 1.2)), 3), 25)
    return TreeShape(subdistricts, max(3, math.ceil(per_district / subdistricts)))


def tree_rows(*, seed: int, elders: int) -> list[dict[str, Any]]:
    """Rows for ``areas_import_rows``: code, name, kind; deterministic in (seed, elders)."""
    shape = tree_shape(elders)
    rng = random.Random(f"tanfang-demo-tree:{seed}:{shape}")
    rows: list[dict[str, Any]] = [
        {"code": r["code"], "name": r["name"], "name_en": r["name_en"]} for r in district_rows()
    ]
    for district in rows[1:]:
        rows.extend(_district(rng, district["code"], shape))
    return rows


def _district(rng: random.Random, code: str, shape: TreeShape) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    taken: set[str] = set()
    count = shape.subdistricts_per_district + rng.randint(-1, 1)
    if code in URBAN_CORE:
        kinds = ["street"] * count
    else:
        streets = max(1, count // 4)
        townships = count // 6
        kinds = ["street"] * streets + ["town"] * (count - streets - townships)
        kinds += ["township"] * townships
    next_number = {"street": 1, "town": 101, "township": 201}
    for index, kind in enumerate(kinds):
        number = next_number[kind]
        next_number[kind] += 1
        sub_code = f"{code}{number:03d}"
        if kind == "street":
            name = names.street_name(rng, taken)
        else:
            name = names.town_name(rng, taken, township=kind == "township")
        out.append({"code": sub_code, "name": name, "kind": kind})
        with_grids = index == 0 and code in URBAN_CORE
        out.extend(_communities(rng, sub_code, name, kind, shape, with_grids=with_grids))
    return out


def _communities(
    rng: random.Random,
    sub_code: str,
    sub_name: str,
    kind: str,
    shape: TreeShape,
    *,
    with_grids: bool,
) -> list[dict[str, Any]]:
    size = shape.communities_per_subdistrict
    count = max(2, round(size * rng.uniform(0.7, 1.3)))
    if kind == "street":
        residents, villagers = count, 0
    elif kind == "town":
        residents = max(1, count // 5)
        villagers = count - residents
    else:
        residents, villagers = 0, count
    taken: set[str] = set()
    stem = names.stem_of(sub_name)
    out: list[dict[str, Any]] = []
    for n in range(1, residents + 1):
        code = f"{sub_code}{n:03d}"
        name = names.residents_community_name(rng, taken, stem)
        out.append({"code": code, "name": name, "kind": "residents"})
        if with_grids:
            for g in range(1, rng.randint(2, 4) + 1):
                out.append({"code": f"{code}{g:03d}", "name": names.grid_name(name, g)})
    for n in range(1, villagers + 1):
        out.append(
            {
                "code": f"{sub_code}{200 + n:03d}",
                "name": names.village_name(rng, taken),
                "kind": "villagers",
            }
        )
    return out
