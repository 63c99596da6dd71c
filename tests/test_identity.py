"""Resident ID and phone validation, masking, and the synthetic ID generator."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from tanfang.registry.capability import CapabilityError, gbt42195_level, to_beijing_level
from tanfang.registry.identity import (
    IdentifierError,
    gender_of,
    mask_id_number,
    mask_phone,
    normalise_id_number,
    normalise_phone,
)
from tanfang.registry.synthetic import synthetic_id_number


@given(
    birth=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(1966, 12, 31)),
    serial=st.integers(min_value=0, max_value=10_000),
    gender=st.sampled_from(["male", "female"]),
)
def test_synthetic_ids_are_valid_and_carry_birth_date_and_gender(
    birth: dt.date, serial: int, gender: str
) -> None:
    number = synthetic_id_number("110105", birth, serial, gender)
    assert ric.is_valid(number)
    assert normalise_id_number(number, birth_date=birth) == number
    assert gender_of(number) == gender
    assert 900 <= int(number[14:17]) <= 999


def test_check_digit_error_is_named_in_the_users_language() -> None:
    good = synthetic_id_number("110105", dt.date(1940, 1, 1), 1, "female")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    with translation.override("en"), pytest.raises(IdentifierError, match="check digit"):
        normalise_id_number(bad)
    with translation.override("zh-hans"), pytest.raises(IdentifierError, match="校验码"):
        normalise_id_number(bad)


def test_birth_date_must_match_the_number() -> None:
    number = synthetic_id_number("110105", dt.date(1940, 1, 1), 1, "female")
    with translation.override("en"), pytest.raises(IdentifierError, match="does not match"):
        normalise_id_number(number, birth_date=dt.date(1941, 1, 1))


def test_length_and_lowercase_x() -> None:
    with translation.override("en"), pytest.raises(IdentifierError, match="18 characters"):
        normalise_id_number("11010519400101")
    for serial in range(40):
        number = synthetic_id_number("110105", dt.date(1944, 2, 29), serial, "male")
        if number.endswith("X"):
            assert normalise_id_number(number.lower()) == number
            break
    else:
        pytest.fail("no check digit X among 40 serials")


def test_masks_keep_only_what_the_screen_needs() -> None:
    assert mask_id_number("11010519400101902X") == "110105********902X"
    assert mask_phone("13800138000") == "138****8000"


@pytest.mark.parametrize("raw", ["138 0013 8000", "+86 138-0013-8000", "010-65123456"])
def test_phone_forms_are_accepted(raw: str) -> None:
    assert normalise_phone(raw).isdigit()


@pytest.mark.parametrize("raw", ["12345", "2380013800", "abc"])
def test_phone_garbage_is_refused(raw: str) -> None:
    with pytest.raises(IdentifierError):
        normalise_phone(raw)


@pytest.mark.parametrize(
    ("scheme", "level", "beijing"),
    [
        ("beijing", 1, 1),
        ("beijing", 0, 0),
        ("gbt42195", 0, 0),
        ("gbt42195", 1, 3),
        ("gbt42195", 2, 2),
        ("gbt42195", 3, 1),
        ("gbt42195", 4, 1),
    ],
)
def test_capability_levels_map_to_the_plans_numbering(
    scheme: str, level: int, beijing: int
) -> None:
    assert to_beijing_level(scheme, level) == beijing


def test_capability_levels_out_of_range() -> None:
    with pytest.raises(CapabilityError):
        to_beijing_level("beijing", 4)
    with pytest.raises(CapabilityError):
        to_beijing_level("other", 1)


@pytest.mark.parametrize(
    ("score", "kw", "level"),
    [
        (90, {}, 0),
        (89, {}, 1),
        (66, {}, 1),
        (65, {}, 2),
        (46, {}, 2),
        (45, {}, 3),
        (30, {}, 3),
        (29, {}, 4),
        (90, {"coma": True}, 4),
        (70, {"dementia": True}, 2),
        (50, {"care_risk_events_30d": 2}, 3),
        (10, {"dementia": True}, 4),
    ],
)
def test_gbt42195_score_to_level(score: int, kw: dict[str, object], level: int) -> None:
    assert gbt42195_level(score, **kw) == level  # type: ignore[arg-type]


def test_an_elder_born_before_her_district_existed_keeps_a_valid_number() -> None:
    # 房山区 (110111) exists since 1986; numbers issued since then carry it for elders born
    # long before. python-stdnum's own validate() refuses these; the registry must not.
    number = synthetic_id_number("110111", dt.date(1940, 5, 1), 3, "female")
    assert not ric.is_valid(number)
    assert normalise_id_number(number, birth_date=dt.date(1940, 5, 1)) == number


def test_an_unknown_place_code_is_refused() -> None:
    body = "99999919400501902"
    with translation.override("en"), pytest.raises(IdentifierError, match="place code"):
        normalise_id_number(body + ric.calc_check_digit(body + "0"))
