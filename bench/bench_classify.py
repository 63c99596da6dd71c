"""How many elders a second ``classify`` handles on one core.

Generates N varied synthetic elders (seeded, so every run classifies the same ones), then
times, with ``time.perf_counter`` and the best of several rounds:

1. a baseline loop that only reads each facts dict (the floor any classifier pays),
2. ``classify`` without district rules (the target: at least 100,000 elders a second),
3. ``classify`` with three district "other" rules,
4. ``parse_facts`` + ``classify`` + ``as_json`` from JSON-shaped dicts (what the CLI does,
   less the JSON text itself).

The ratio ``classify / baseline`` compares against a reference measured in the same run, so
it means the same on a fast and a slow machine.

Usage: ``.venv/bin/python bench/bench_classify.py [-n 200000] [--rounds 3] [--seed 2024]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tanfang.registry.classification import (
    DISABILITY_TYPES,
    classify,
    compile_other_rules,
    parse_facts,
)

TARGET = 100_000
AS_OF = dt.date(2024, 6, 1)
RELATIONS = ("spouse", "child", "grandchild", "sibling", "caregiver", "other")
RULES = [
    {
        "code": "dementia_alone",
        "label": "失智且无日常陪伴",
        "all": [
            {"fact": "dementia", "op": "==", "value": True},
            {"fact": "daily_companionship", "op": "==", "value": False},
        ],
    },
    {
        "code": "poor_old",
        "label": "高龄特困",
        "all": [
            {"fact": "extremely_poor", "op": "==", "value": True},
            {"fact": "age", "op": ">=", "value": 80},
        ],
    },
    {
        "code": "carer_of_disabled_child",
        "label": "照护重度残疾子女",
        "all": [{"fact": "lives_with_disabled_child", "op": "==", "value": True}],
    },
]


def _maybe(rng: random.Random, p_known: float = 0.9) -> bool:
    return rng.random() < p_known


def synthetic_elder(rng: random.Random, ident: int) -> dict[str, Any]:
    """One elder in the input shape, with dates as strings and about one fact in ten absent."""
    born = dt.date(1924, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 40))
    facts: dict[str, Any] = {"id": ident, "as_of": AS_OF.isoformat()}
    if _maybe(rng, 0.97):
        facts["birth_date"] = born.isoformat()
    for key in ("rural", "relatives_same_subdistrict", "daily_companionship"):
        if _maybe(rng):
            facts[key] = rng.random() < 0.3
    for key in ("extremely_poor", "dementia"):
        if _maybe(rng, 0.5):
            facts[key] = rng.random() < 0.1
    if _maybe(rng):
        roll = rng.random()
        facts["spouse"] = (
            None
            if roll < 0.3
            else {"alive": roll < 0.8, "lives_with": rng.random() < 0.8}
            if _maybe(rng)
            else {"alive": True}
        )
    if _maybe(rng):
        children = []
        for _ in range(rng.choice((0, 1, 1, 2, 2, 2, 3, 4))):
            child: dict[str, Any] = {}
            for key, p_true in (
                ("alive", 0.92),
                ("lives_with", 0.25),
                ("same_subdistrict", 0.35),
                ("can_support", 0.8),
            ):
                if _maybe(rng):
                    child[key] = rng.random() < p_true
            if _maybe(rng):
                child["age"] = rng.randrange(12, 75)
            if _maybe(rng):
                child["away_months"] = rng.choice((0, 0, 2, 6, 12, 24))
            if _maybe(rng):
                child["disability_grade"] = rng.choice((None,) * 12 + (1, 2, 3, 4))
            children.append(child)
        facts["children"] = children
    if _maybe(rng):
        facts["household"] = [
            {"relation": rng.choice(RELATIONS), "age": rng.randrange(5, 95)}
            for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))
        ]
    if _maybe(rng, 0.8):
        facts["capability_level"] = rng.choice((None, 0, 0, 0, 1, 2, 3))
    if _maybe(rng):
        facts["disability"] = (
            None
            if rng.random() < 0.8
            else {"grade": rng.randrange(1, 5), "type": rng.choice(DISABILITY_TYPES)}
        )
    return facts


def best_of(rounds: int, run: Callable[[], None]) -> float:
    times = []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="number of elders")
    parser.add_argument("--rounds", type=int, default=3, help="take the best of this many")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    raw = [synthetic_elder(rng, i) for i in range(args.n)]
    parsed = [parse_facts(r) for r in raw]
    rules = compile_other_rules(RULES)

    def baseline() -> None:
        for facts in parsed:
            facts.get("id")
            facts.get("birth_date")
            facts.get("children")
            facts.get("household")
            facts.get("spouse")

    def plain() -> None:
        for facts in parsed:
            classify(facts)

    def with_rules() -> None:
        for facts in parsed:
            classify(facts, rules)

    def end_to_end() -> None:
        for obj in raw:
            classify(parse_facts(obj), rules).as_json()

    n = args.n
    t_base = best_of(args.rounds, baseline)
    t_plain = best_of(args.rounds, plain)
    t_rules = best_of(args.rounds, with_rules)
    t_e2e = best_of(args.rounds, end_to_end)

    assigned = sum(bool(classify(f, rules).categories) for f in parsed)
    print(f"elders: {n:,} (seed {args.seed}); {assigned / n:.0%} in at least one category")
    print(f"baseline (read each dict):        {n / t_base:>12,.0f} elders/s")
    print(f"classify():                       {n / t_plain:>12,.0f} elders/s")
    print(f"classify() with 3 district rules: {n / t_rules:>12,.0f} elders/s")
    print(f"parse_facts + classify + as_json: {n / t_e2e:>12,.0f} elders/s")
    print(f"ratio classify / baseline:        {t_plain / t_base:>12.1f}")
    print(f"ratio classify+rules / baseline:  {t_rules / t_base:>12.1f}")
    verdict = "meets" if n / t_plain >= TARGET else "MISSES"
    print(f"target {TARGET:,} elders/s per core: {verdict}")


if __name__ == "__main__":
    main()
