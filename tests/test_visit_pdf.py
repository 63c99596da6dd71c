"""The printable visit record and blank form.

The PDF's text is not extracted (no PDF reader is installed); the lines that go onto the page
come from the same pure function, ``form_lines``, and are checked there. ``visit_pdf`` is
checked for a well-formed PDF with its pages.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.utils import translation

from tanfang.visits.pdf import BLANK, EMPTY, TICKED, form_lines, mask_name, visit_pdf
from tanfang.visits.record_form import SECTIONS, validate_sections


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b(?!s)", pdf))


def record(**overrides: Any) -> dict[str, Any]:
    sections, errors = validate_sections(
        {
            "health": {"mobility": "aided", "illnesses": ["diabetes", "stroke"]},
            "safety": {"gas": {"hazard": True, "what": "hose cracked"}, "water": {"hazard": False}},
            "hygiene": {"household": {"status": "abnormal", "detail": "rubbish piled up"}},
            "needs": {"kinds": ["rehabilitation_nursing"]},
            "consent": {"care_actions": True, "given_by": "elder"},
        }
    )
    assert errors == []
    base: dict[str, Any] = {
        "elder_name": "测试老人",
        "elder_masked_id": "110105********902X",
        "community": "示例社区",
        "visitor_name": "探访员甲",
        "mode": "in_home",
        "started_at": datetime(2026, 3, 5, 1, 30, tzinfo=UTC),
        "ended_at": datetime(2026, 3, 5, 1, 48, tzinfo=UTC),
        "person_met": "elder",
        "outcome": "met",
        "sections": sections,
        "risk_level": "high",
        "risk_reasons": ["gas_hazard"],
        "notes": "Will call again on Friday.",
        "location": {"latitude": 39.9042, "longitude": 116.4074, "accuracy_m": 15},
    }
    base.update(overrides)
    return base


def line_starting(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, (prefix, found)
    return found[0]


@pytest.mark.parametrize(
    ("name", "masked"), [("测试老人", "测***"), ("王五", "王*"), (" 甲 ", "甲"), ("", "")]
)
def test_names_are_masked(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_the_blank_form_has_every_section_and_nothing_ticked() -> None:
    lines = form_lines(None, "en")
    assert lines[0] == "Visit record of an elderly person with special difficulties"
    with translation.override("en"):
        for section in SECTIONS:
            start = lines.index(str(section.label)) + 1
            # The section's fields follow its heading, one line each, in order.
            for spec, line in zip(section.fields, lines[start:], strict=False):
                assert line.startswith(f"{spec.label}: ")
                for _code, label in spec.choices:
                    assert f"{EMPTY} {label}" in line
    assert not any(TICKED in line for line in lines)
    assert line_starting(lines, "Mode: ") == (
        "Mode: □ Phone □ Online (video) □ In-home □ Remote monitoring □ Combined"
    )
    assert line_starting(lines, "Gas: ") == f"Gas: □ Hazard □ No hazard    What: {BLANK}"
    assert line_starting(lines, "Elder: ") == f"Elder: {BLANK}    Resident ID: {BLANK}"
    assert any(line.startswith("Visitor’s signature") for line in lines)
    assert not any(line.startswith("Check-in location") for line in lines)


def test_a_filled_record_ticks_what_was_found() -> None:
    lines = form_lines(record(), "en")
    assert line_starting(lines, "Elder: ") == "Elder: 测***    Resident ID: 110105********902X"
    assert not any("测试老人" in line for line in lines)
    assert line_starting(lines, "Community: ") == "Community: 示例社区    Visitor: 探访员甲"
    assert line_starting(lines, "Visit time: ") == "Visit time: 2026-03-05 09:30 – 09:48"
    assert "■ In-home" in line_starting(lines, "Mode: ")
    assert "□ Phone" in line_starting(lines, "Mode: ")
    assert "■ The elder" in line_starting(lines, "Person met: ")
    assert "■ Met" in line_starting(lines, "Outcome: ")
    assert line_starting(lines, "Check-in location: ") == (
        "Check-in location: 39.90420, 116.40740 (±15 m)"
    )
    assert "■ Needs help or aids" in line_starting(lines, "Mobility: ")
    illnesses = line_starting(lines, "Illnesses: ")
    assert "■ Diabetes" in illnesses and "■ Stroke" in illnesses and "□ Cancer" in illnesses
    assert line_starting(lines, "Gas: ") == "Gas: ■ Hazard □ No hazard    What: hose cracked"
    assert line_starting(lines, "Water: ") == "Water: □ Hazard ■ No hazard    What: —"
    assert line_starting(lines, "Heating: ") == "Heating: □ Hazard □ No hazard    What: —"
    assert line_starting(lines, "Household hygiene: ") == (
        "Household hygiene: □ Normal ■ Abnormal    What is wrong: rubbish piled up"
    )
    assert "■ Rehabilitation nursing" in line_starting(lines, "Services needed: ")
    assert line_starting(lines, "Agrees to the care actions: ") == (
        "Agrees to the care actions: ■ Yes □ No"
    )
    assert "■ High risk □ Priority □ General" in lines
    assert line_starting(lines, "Reasons: ") == "Reasons: Gas hazard"
    assert "Will call again on Friday." in lines
    # Nothing may be written onto a record: its empty fields show a dash, not a line.
    assert line_starting(lines, "Other need: ") == "Other need: —"


def test_times_are_shown_in_beijing_time_and_across_midnight() -> None:
    lines = form_lines(
        record(
            started_at="2026-03-05T15:50:00+00:00",
            ended_at=datetime(2026, 3, 6, 0, 20, tzinfo=timezone(timedelta(hours=8))),
        ),
        "en",
    )
    assert line_starting(lines, "Visit time: ") == "Visit time: 2026-03-05 23:50 – 2026-03-06 00:20"
    lines = form_lines(record(ended_at=None), "en")
    assert line_starting(lines, "Visit time: ") == "Visit time: 2026-03-05 09:30"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        form_lines(record(started_at=datetime(2026, 3, 5, 9, 30)), "en")  # noqa: DTZ001


def test_the_record_level_consent_fills_the_form_when_the_sections_lack_it() -> None:
    lines = form_lines(record(sections={}, consent=False), "en")
    assert line_starting(lines, "Agrees to the care actions: ") == (
        "Agrees to the care actions: □ Yes ■ No"
    )


def test_the_form_speaks_the_language_asked() -> None:
    lines = form_lines(record(), "zh-hans")
    elder = lines[1]  # the line after the title
    assert elder.startswith("老年人") and "测***" in elder and "公民身份号码" in elder
    assert any("■ 电话" in line or "□ 电话" in line for line in lines)
    assert any("□ 已故" in line for line in lines)
    assert not any("Deceased" in line for line in lines)


def test_visit_pdf_is_an_a4_pdf_with_pages() -> None:
    for pdf in (visit_pdf(None), visit_pdf(record(), language="en")):
        assert pdf.startswith(b"%PDF-")
        assert pdf.rstrip().endswith(b"%%EOF")
        assert page_count(pdf) >= 1
        assert b"/MediaBox [ 0 0 595.2756 841.8898 ]" in pdf  # A4 in points
        assert b"STSong-Light" in pdf


def test_the_same_record_gives_the_same_bytes() -> None:
    assert visit_pdf(record()) == visit_pdf(record())


def test_long_and_awkward_text_is_laid_out_over_more_pages() -> None:
    awkward = record(notes="<b>&amp; not markup</b> " + "很长的说明。" * 600)
    short = visit_pdf(record())
    long = visit_pdf(awkward)
    assert page_count(long) > page_count(short)
    assert "<b>&amp; not markup</b>" in form_lines(awkward, "en")[-3]
