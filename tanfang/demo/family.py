"""One synthetic elder's family and circumstances, and the deliveries that report them.

Spouse, children and household follow era- and place-dependent distributions; then come the
department facts (capability assessment in either scheme, disability certificate,
extremely-poor status, care contracts) and the census (willingness, first contact), with the
deliberate gaps described in ``people.py``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from tanfang.demo import names
from tanfang.demo.shapes import (
    SOURCE_CENSUS,
    SOURCE_CIVIL_AFFAIRS,
    SOURCE_DISABLED_FEDERATION,
    Delivery,
    DemoElder,
    demo_landline,
    demo_mobile,
)
from tanfang.registry.first_contact_rules import advise_first_contact
from tanfang.registry.records import (
    UNSET,
    AssessmentRecord,
    ChildRecord,
    ContractRecord,
    ElderRecord,
    FirstContactRecord,
    HouseholdRecord,
    WillingnessRecord,
)

_DISABILITY_TYPES = (
    "physical",
    "visual",
    "hearing",
    "speech",
    "intellectual",
    "mental",
    "multiple",
)
_DISABILITY_TYPE_WEIGHTS = (40, 15, 20, 3, 7, 8, 7)
_REFUSAL_NOTES = (
    "本人表示身体尚好，暂不需要上门探访",
    "本人同意电话联系，拒绝入户",
    "子女表示由家人照顾，暂不需要探访",
)


class Family:
    """The facts about one elder, and the three deliveries that carry them."""

    def __init__(
        self,
        today: dt.date,
        rng: random.Random,
        elder: DemoElder,
        age: int,
        profile: str,
        family_name: str,
    ) -> None:
        self.rng = rng
        self.elder = elder
        self.age = age
        self.profile = profile
        self.family_name = family_name
        self.rural = elder.community.rural
        self.today = today

    def build(self) -> None:
        rng, elder = self.rng, self.elder
        census_done = self.profile != "" or rng.random() > 0.025
        spouse_status, spouse_lives_with = self._spouse()
        children = self._children(spouse_status)
        household = self._household(spouse_status, spouse_lives_with, children)
        # Department records (民政): identity, place, support status, assessment, contracts.
        poor = self._extremely_poor(spouse_status, children)
        assessment = self._assessment()
        civil = ElderRecord(
            id_number=elder.id_number,
            name=elder.name,
            gender=elder.gender,
            birth_date=elder.birth_date,
            community_code=elder.community.code,
            extremely_poor=poor,
            dispersed_supported=bool(poor) and rng.random() < 0.85,
            life_status=self._life_status(),
            assessment=assessment,
            contract=self._contract(poor, assessment),
        )
        civil_date = self._days_ago(200, 400)
        elder.deliveries.append(Delivery(SOURCE_CIVIL_AFFAIRS, civil_date, civil))
        disability = self._disability()
        if disability is not None:
            status, grade, kind = disability
            elder.deliveries.append(
                Delivery(
                    SOURCE_DISABLED_FEDERATION,
                    self._days_ago(120, 380),
                    ElderRecord(
                        id_number=elder.id_number,
                        disability_status=status,
                        disability_grade=grade,
                        disability_type=kind,
                    ),
                )
            )
        if not census_done:
            return
        census_date = self._days_ago(20, 300)
        census = ElderRecord(
            id_number=elder.id_number,
            address=self._address(),
            phone=self._phone() if rng.random() < 0.9 else None,
            grid_code=rng.choice(elder.community.grid_codes)
            if elder.community.grid_codes and rng.random() < 0.9
            else UNSET,
        )
        if spouse_status:
            census.spouse_status = spouse_status
            if spouse_status == "alive":
                census.spouse_lives_with = spouse_lives_with
        census.children = children
        census.household = household
        census.relatives_same_subdistrict = self._maybe(
            0.08, rng.random() < (0.45 if self.rural else 0.3)
        )
        lives_with_someone = bool(household)
        companionship = rng.random() < (0.9 if lives_with_someone else 0.35)
        census.daily_companionship = self._maybe(0.06, companionship)
        if self.profile == "widow_alone":
            census.relatives_same_subdistrict = False
            census.daily_companionship = False
        census.willingness = self._willingness(census_date)
        elder.deliveries.append(Delivery(SOURCE_CENSUS, census_date, census))
        self._first_contact(census, census_date)

    # ------------------------------------------------------------------ facts

    def _days_ago(self, low: int, high: int) -> dt.date:
        return self.today - dt.timedelta(days=self.rng.randint(low, high))

    def _phone(self) -> str:
        """The elder's own phone: a mobile or a landline of the demo blocks."""
        if self.rng.random() < 0.55:
            return demo_mobile(2 * self.elder.index)
        return demo_landline(self.elder.index)

    def _contact_phone(self) -> str:
        return demo_mobile(2 * self.elder.index + 1)

    def _maybe(self, p_unknown: float, value: Any) -> Any:
        return None if self.rng.random() < p_unknown else value

    def _spouse(self) -> tuple[str, bool | None]:
        rng, age, profile = self.rng, self.age, self.profile
        if profile in ("widow_alone", "aged_with_disabled_child", "poor_advanced_age"):
            return ("deceased" if profile != "poor_advanced_age" else "none"), None
        if profile == "empty_nest_couple":
            return "alive", True
        if rng.random() < 0.03:
            return "", None  # unknown
        if rng.random() < 0.03:
            return "none", None
        alive = {60: 0.8, 70: 0.64, 80: 0.42, 90: 0.18}[min(90, age // 10 * 10)]
        if self.elder.gender == "female":
            alive -= 0.08
        if rng.random() < alive:
            return "alive", rng.random() < 0.93
        return "deceased", None

    def _child_count(self) -> int:
        rng, year = self.rng, self.elder.birth_date.year
        if rng.random() < 0.04:
            return 0
        if year <= 1935:
            return rng.choices((1, 2, 3, 4, 5, 6), (5, 12, 25, 28, 18, 12))[0]
        if year <= 1950:
            return rng.choices((1, 2, 3, 4, 5), (10, 30, 32, 20, 8))[0]
        if self.rural:
            return rng.choices((1, 2, 3), (35, 50, 15))[0]
        return rng.choices((1, 2, 3), (72, 24, 4))[0]

    def _children(self, spouse_status: str) -> list[ChildRecord] | None:
        rng, profile, elder = self.rng, self.profile, self.elder
        if profile not in ("aged_with_disabled_child", "only_child_died") and rng.random() < 0.03:
            return None  # not recorded
        if profile in ("widow_alone", "poor_advanced_age"):
            return []
        count = {
            "aged_with_disabled_child": 1,
            "only_child_died": 1,
            "left_behind": 2,
            "empty_nest_couple": 2,
        }.get(profile) or self._child_count()
        child_surname = (
            self.family_name
            if elder.gender == "male" or spouse_status == "none"
            else names.surname(rng)
        )
        year = elder.birth_date.year + rng.randint(21, 30)
        children: list[ChildRecord] = []
        taken: set[str] = set()
        for _ in range(count):
            gender = "male" if rng.random() < 0.52 else "female"
            name = child_surname + names.child_given_name(rng, gender)
            while name in taken:  # a first contact is matched to a child by name
                name = child_surname + names.child_given_name(rng, gender)
            taken.add(name)
            child = ChildRecord(
                name=name,
                alive=rng.random() > (0.04 + max(0, self.age - 85) * 0.01),
                birth_year=min(year, self.today.year - 18),
                can_support=rng.random() < 0.9,
                disability_grade=rng.choice((1, 2, 3, 4)) if rng.random() < 0.025 else None,
                adopted=False,
            )
            year += rng.randint(1, 4)
            if count == 1 and not self.rural and rng.random() < 0.04:
                child.alive = False  # 失独
            self._place_child(child)
            children.append(child)
        if profile == "aged_with_disabled_child":
            only = children[0]
            only.alive, only.lives_with, only.same_subdistrict = True, True, True
            only.disability_grade, only.can_support = rng.choice((1, 2)), False
            only.away_months = None
        elif profile == "only_child_died":
            children[0].alive = False
            children[0].lives_with = children[0].same_subdistrict = None
        elif profile == "left_behind":
            for child in children:
                child.alive, child.lives_with, child.same_subdistrict = True, False, False
                child.away_months, child.away_reason = rng.randint(8, 30), "work"
        elif profile == "empty_nest_couple":
            for child in children:
                child.alive, child.lives_with, child.same_subdistrict = True, False, False
        return children

    def _place_child(self, child: ChildRecord) -> None:
        rng = self.rng
        if not child.alive:
            return
        child.lives_with = rng.random() < (0.26 if self.age >= 85 else 0.17)
        if child.lives_with:
            child.same_subdistrict = True
            child.away_months = 0 if self.rural else None
            return
        child.same_subdistrict = rng.random() < (0.3 if self.rural else 0.28)
        if not self.rural:
            return
        if not child.same_subdistrict and rng.random() < 0.65:
            child.away_months = rng.randint(6, 36) if rng.random() < 0.85 else rng.randint(2, 5)
            child.away_reason = "work" if rng.random() < 0.8 else "business"
        elif rng.random() > 0.05:
            child.away_months = 0  # at home; a few are not recorded either way

    def _household(
        self,
        spouse_status: str,
        spouse_lives_with: bool | None,
        children: list[ChildRecord] | None,
    ) -> list[HouseholdRecord] | None:
        rng = self.rng
        if children is None or (not spouse_status and rng.random() < 0.5):
            return None
        members: list[HouseholdRecord] = []
        if spouse_status == "alive" and spouse_lives_with:
            members.append(HouseholdRecord("spouse", max(55, self.age + rng.randint(-5, 4))))
        for child in children:
            if child.lives_with and child.alive:
                child_age = self.today.year - (child.birth_year or self.today.year - 40)
                members.append(HouseholdRecord("child", child_age))
                if child_age < 65 and rng.random() < 0.45:
                    members.append(HouseholdRecord("child_in_law", child_age + rng.randint(-3, 3)))
                if child_age < 55 and rng.random() < 0.3:
                    members.append(HouseholdRecord("grandchild", rng.randint(8, 30)))
        if self.age >= 85 and not self.profile and rng.random() < 0.08:
            members.append(HouseholdRecord("caregiver", rng.randint(40, 58)))
        return members

    def _extremely_poor(self, spouse_status: str, children: list[ChildRecord] | None) -> Any:
        rng = self.rng
        if self.profile == "poor_advanced_age":
            return True
        if rng.random() < 0.05:
            return UNSET
        alone = (
            spouse_status in ("none", "deceased")
            and children is not None
            and not any(c.alive for c in children)
        )
        if alone:
            return rng.random() < (0.45 if self.rural else 0.15)
        return rng.random() < (0.015 if self.rural else 0.004)

    def _assessment(self) -> AssessmentRecord | Any:
        rng = self.rng
        if self.profile == "impaired":
            return AssessmentRecord("beijing", 1, self._days_ago(30, 400))
        chance = 0.65 if self.age < 70 else 0.75 if self.age < 80 else 0.85
        if rng.random() >= chance:
            return UNSET
        on = self._days_ago(15, 720)
        older = self.age >= 85
        if rng.random() < 0.6:
            beijing = (45, 14, 13, 28) if older else (62, 10, 11, 17)  # levels 0, 1, 2, 3
            return AssessmentRecord("beijing", rng.choices((0, 1, 2, 3), beijing)[0], on)
        gbt = (40, 24, 14, 12, 10) if older else (55, 22, 11, 7, 5)  # GB/T levels 0–4
        return AssessmentRecord("gbt42195", rng.choices((0, 1, 2, 3, 4), gbt)[0], on)

    def _disability(self) -> tuple[str, int | None, str] | None:
        rng = self.rng
        if self.profile == "severely_disabled":
            return "certified", rng.choice((1, 2)), rng.choice(("physical", "visual"))
        roll = rng.random()
        if roll < 0.08:
            return None  # the federation has no record: unknown
        if roll < 0.18 or (self.age >= 85 and roll < 0.24):
            grade = rng.choices((1, 2, 3, 4), (18, 30, 30, 22))[0]
            kind = rng.choices(_DISABILITY_TYPES, _DISABILITY_TYPE_WEIGHTS)[0]
            return "certified", grade, kind
        return "none", None, ""

    def _contract(self, poor: Any, assessment: Any) -> ContractRecord | Any:
        rng = self.rng
        severe = isinstance(assessment, AssessmentRecord) and (
            (assessment.scheme == "beijing" and assessment.level in (1, 2))
            or (assessment.scheme == "gbt42195" and assessment.level >= 3)
        )
        station = self.elder.community.name.removesuffix("社区").removesuffix("村")
        if self.profile == "impaired":
            return ContractRecord(
                "home_care_bed",
                f"{station}养老照料中心",
                "key_service",
                self._days_ago(30, 300),
            )
        if (poor is True or severe) and rng.random() < 0.5:
            group = "safeguard" if poor is True else "key_service"
            return ContractRecord(
                "station", f"{station}社区养老服务驿站", group, self._days_ago(60, 900)
            )
        if severe and rng.random() < 0.12:
            return ContractRecord(
                "home_care_bed",
                f"{station}养老照料中心",
                "key_service",
                self._days_ago(30, 600),
            )
        if rng.random() < 0.02:
            return ContractRecord(
                "station", f"{station}社区养老服务驿站", "other", self._days_ago(30, 600)
            )
        return UNSET

    def _life_status(self) -> Any:
        if self.profile:
            return UNSET
        roll = self.rng.random()
        if roll < 0.010:
            return "in_hospital"
        if roll < 0.018:
            return "in_institution"
        if roll < 0.022:
            return "moved_away"
        if roll < 0.025:
            return "deceased"
        return UNSET

    def _address(self) -> str:
        rng, community = self.rng, self.elder.community
        if community.rural:
            return f"{community.name}{rng.randint(1, 260)}号"
        base = community.name.removesuffix("社区")
        return (
            f"{base}{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元"
            f"{rng.randint(1, 18)}{rng.randint(1, 4):02d}室"
        )

    def _willingness(self, on: dt.date) -> WillingnessRecord:
        rng = self.rng
        worker = names.adult_name(rng)
        if rng.random() < 0.025 and not self.profile:
            return WillingnessRecord(False, on, worker, rng.choice(_REFUSAL_NOTES))
        return WillingnessRecord(True, on, worker)

    def _first_contact(self, census: ElderRecord, census_date: dt.date) -> None:
        """A child where there is one, a person designated by the community otherwise."""
        rng, elder = self.rng, self.elder
        roll = rng.random()
        if roll < 0.006 and not self.profile:
            return  # deliberately missing
        children = census.children
        advice = advise_first_contact(
            None if children is None else [_child_facts(c, self.today) for c in children]
        )
        if advice.kind == "child" and advice.child_index is not None and rng.random() > 0.01:
            child = children[advice.child_index]
            elder.first_contact = FirstContactRecord(child.name, "child", self._contact_phone())
        else:
            relation = rng.choices(("relative", "neighbour", "community"), (4, 3, 3))[0]
            elder.first_contact = FirstContactRecord(
                names.adult_name(rng),
                relation,
                self._contact_phone(),
                designated_by_community=True,
            )
        census.first_contact = elder.first_contact
        elder.first_contact_since = census_date
        stale = rng.random() < 0.03 and not self.profile
        elder.first_contact_confirmed_on = self._days_ago(380, 700) if stale else census_date
        if stale:
            elder.first_contact_since = elder.first_contact_confirmed_on


def _child_facts(child: ChildRecord, today: dt.date) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: getattr(child, k)
        for k in ("alive", "lives_with", "same_subdistrict", "can_support")
        if getattr(child, k) is not None
    }
    if child.birth_year is not None:
        out["age"] = today.year - child.birth_year
    return out
