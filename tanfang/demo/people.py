"""Synthetic elders for the demo city: names, ID numbers, families, and the facts about them.

A plain-data generator, no database: ``ElderFactory.identity(i)`` decides who elder ``i`` is
and ``ElderFactory.make(identity)`` returns her as a ``DemoElder`` with the records each
department would deliver about her (``deliveries``; see ``family.py``). The same seed gives
the same people. The distributions are rough but plausible for Beijing's registry of elders
with special difficulties: old (median age in the late seventies), many widowed, one-child
families among those born in the 1950s and 1960s, children away working in the villages.

Some facts are left out on purpose (a census not yet done, children not recorded, a disability
status unknown) so that the classification has facts to ask for and the data-quality page has
something to show; a few first contacts are missing or stale for the same reason.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random

from tanfang.demo import names
from tanfang.demo.family import Family
from tanfang.demo.shapes import BIRTH_REFERENCE, Community, DemoElder, Identity, id_place
from tanfang.registry.synthetic import synthetic_id_number

# (lowest age, weight per year of age) — the registry is old.
_AGE_BANDS = (
    (60, 2.6),
    (65, 3.0),
    (70, 3.2),
    (75, 3.3),
    (80, 3.2),
    (85, 2.6),
    (90, 1.4),
    (95, 0.5),
)
_AGES = list(range(60, 101))
_AGE_CUMULATIVE: list[float] = []
_acc = 0.0
for _age in _AGES:
    _acc += next(w for low, w in reversed(_AGE_BANDS) if _age >= low)
    _AGE_CUMULATIVE.append(_acc)

# Elders built with a fixed shape first, so that even a small demo shows every category and
# both district rules: (district code or "", rural?, profile).
SHOWCASE: tuple[tuple[str, bool | None, str], ...] = (
    ("110111", False, "aged_with_disabled_child"),  # 房山区 rule
    ("110101", False, "poor_advanced_age"),  # 东城区 rule
    ("", True, "left_behind"),
    ("", False, "only_child_died"),
    ("", False, "widow_alone"),
    ("", False, "empty_nest_couple"),
    ("", False, "severely_disabled"),
    ("", None, "impaired"),
    ("", True, "left_behind"),
    ("110111", False, "aged_with_disabled_child"),
)


class ElderFactory:
    """Makes the demo's elders one by one, deterministically from a seed.

    Steps for each elder: pick a community (weighted) and an age (skewed old); allocate a
    unique synthetic ID number (the district code as place, a sequence code 900–999);
    generate spouse, children and household with era- and place-dependent distributions;
    then the department facts (capability assessment in either scheme, disability
    certificate, extremely-poor status, care contracts), the census (willingness, first
    contact) and the deliberate gaps.
    """

    def __init__(self, *, seed: int, communities: list[Community], today: dt.date) -> None:
        self.seed = seed
        self.today = today
        self.communities = communities
        rng = random.Random(f"tanfang-demo-weights:{seed}")
        weights = [rng.uniform(0.4, 1.6) * (0.7 if c.rural else 1.0) for c in communities]
        self._cumulative: list[float] = []
        total = 0.0
        for w in weights:
            total += w
            self._cumulative.append(total)
        self._by_district: dict[str, list[int]] = {}
        for i, c in enumerate(communities):
            self._by_district.setdefault(c.district_code, []).append(i)
        self._sequence: dict[tuple[str, dt.date, str], int] = {}

    # ------------------------------------------------------------------ identity

    def identity(self, index: int) -> Identity:
        """Place, age, gender, birth date and ID sequence of elder ``index``.

        The only step with state (the sequence codes handed out so far), so it runs in one
        process, in index order; ``make`` may then run anywhere.
        """
        rng = random.Random(f"tanfang-demo-identity:{self.seed}:{index}")
        district, rural, profile = ("", None, "") if index >= len(SHOWCASE) else SHOWCASE[index]
        community = self._pick_community(rng, district, rural)
        if profile == "aged_with_disabled_child":
            age = rng.randint(90, 96)
        elif profile == "poor_advanced_age":
            age = rng.randint(81, 88)
        else:
            age = rng.choices(_AGES, cum_weights=_AGE_CUMULATIVE)[0]
        gender = "female" if rng.random() < (0.55 if age < 80 else 0.62) else "male"
        if profile == "widow_alone":
            gender = "female"
        birth = BIRTH_REFERENCE - dt.timedelta(days=365 * age + rng.randint(1, 360) + age // 4)
        place = self.communities[community].district_code
        while True:  # 50 sequence codes per place, day and gender; then the next day
            key = (place, birth, gender)
            used = self._sequence.get(key, 0)
            if used < 50:
                self._sequence[key] = used + 1
                break
            birth += dt.timedelta(days=1)
        return Identity(index, community, age, gender, birth, used, profile)

    def _pick_community(self, rng: random.Random, district: str, rural: bool | None) -> int:
        if not district and rural is None:
            pos = bisect.bisect_left(self._cumulative, rng.random() * self._cumulative[-1])
            return min(pos, len(self.communities) - 1)
        pool = self._by_district.get(district, []) if district else range(len(self.communities))
        candidates = [i for i in pool if rural is None or self.communities[i].rural == rural]
        return rng.choice(candidates or list(range(len(self.communities))))

    # ------------------------------------------------------------------ one elder

    def make(self, identity: Identity) -> DemoElder:
        """The elder with this identity, her family and the deliveries about her.

        Depends only on the seed and the identity, so batches can be made in parallel.
        """
        index = identity.index
        rng = random.Random(f"tanfang-demo-elder:{self.seed}:{index}")
        community = self.communities[identity.community]
        id_number = synthetic_id_number(
            id_place(community.district_code),
            identity.birth_date,
            identity.serial,
            identity.gender,
        )
        family_name = names.surname(rng)
        name = family_name + names.elder_given_name(rng, identity.gender, identity.birth_date.year)
        elder = DemoElder(
            index=index,
            id_number=id_number,
            name=name,
            gender=identity.gender,
            birth_date=identity.birth_date,
            community=community,
            deliveries=[],
        )
        family = Family(self.today, rng, elder, identity.age, identity.profile, family_name)
        family.build()
        return elder
