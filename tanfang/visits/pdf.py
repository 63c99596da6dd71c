"""The printable visit record: one A4 PDF of a filled record, or of the blank form to fill in.

Both are the same form, drawn from ``record_form.SECTIONS``: every choice is printed with a box,
ticked (■) when the record holds it and empty (□) otherwise; a text field prints its value, or a
line to write on. So a record printed for the archive reads exactly like the paper form a
visitor fills in where there is no phone. Chinese text uses reportlab's built-in CID font
``STSong-Light``: no font file is needed.

``form_lines`` returns the lines in the order they go onto the page; ``visit_pdf`` lays them
out. The record is a plain mapping (the caller builds it from the database; nothing here reads
models). Every key is optional:

==================  ==========================================================================
key                 value
==================  ==========================================================================
elder_name          the elder's name; printed masked (first character, then ``*``)
elder_masked_id     the resident ID number, already masked (``110105********902X``)
community           the name of the elder's community
visitor_name        who visited
mode                a ``record_form.Mode`` code (``"in_home"``)
started_at          timezone-aware ``datetime`` or ISO 8601 text; printed in Asia/Shanghai
ended_at            the same, or ``None``
person_met          a ``record_form.PersonMet`` code
outcome             a ``record_form.Outcome`` code
sections            the canonical dict of ``record_form.validate_sections``
risk_level          a ``risk.RiskLevel`` code
risk_reasons        a sequence of ``risk.REASONS`` codes
notes               free text
consent             ``True``/``False``: the elder agrees to the care actions; used when
                    ``sections["consent"]`` does not say
location            ``{"latitude": float, "longitude": float, "accuracy_m": float | None}``
                    (the in-home check-in), or ``None``
==================  ==========================================================================
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from django.utils import translation
from django.utils.translation import gettext as _
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from tanfang.visits.record_form import (
    MODE_CHOICES,
    OUTCOME_CHOICES,
    PERSON_MET_CHOICES,
    SECTIONS,
    Choices,
    Field,
    Kind,
)
from tanfang.visits.risk import RISK_LEVEL_CHOICES, reason_label

FONT = "STSong-Light"
TICKED = "■"
EMPTY = "□"
BLANK = "_" * 24  # a line to write on
NOT_RECORDED = "—"  # an empty text field of a filled record: nothing may be added
SHANGHAI = ZoneInfo("Asia/Shanghai")
MARGIN = 18 * mm
WRITING_LINE = "_" * 88  # a full line to write on (A4 less margins, at 10 pt)
COLUMN_GAP = "    "  # between the parts of a line, in ``form_lines``

# A line of the form: its style ("title", "heading", "line" or "signature") and its parts. A
# line of two parts ("Gas: ■ Hazard □ No hazard", "What: hose cracked") has two columns.
Block = tuple[str, tuple[str, ...]]


def mask_name(name: str) -> str:
    """The name as printed: its first character, then one ``*`` for each other character."""
    name = name.strip()
    return name[:1] + "*" * (len(name) - 1) if name else ""


def form_lines(record: Mapping[str, Any] | None, language: str = "zh-hans") -> list[str]:
    """The text lines of the printed form, in page order (``None``: the blank form)."""
    return [COLUMN_GAP.join(parts) for _style, parts in _blocks(record, language)]


def visit_pdf(record: Mapping[str, Any] | None, *, language: str = "zh-hans") -> bytes:
    """A4 PDF of a visit record, or of the blank form when ``record`` is None."""
    _register_font()
    blocks = _blocks(record, language)
    styles = _styles(cjk=language.lower().startswith("zh"))
    width = A4[0] - 2 * MARGIN
    story: list[Any] = []
    for style, parts in blocks:
        paragraphs = [Paragraph(escape(part), styles[style]) for part in parts]
        if style == "signature":
            story.append(Spacer(1, 6 * mm))  # room to sign
        if len(paragraphs) == 1:
            story.append(paragraphs[0])
            continue
        columns = Table(
            [paragraphs], colWidths=[width * 0.55, width * 0.45], hAlign="LEFT", style=_FLAT
        )
        story.append(columns)
    with translation.override(language):
        page_word = _("Page %(page)d")
        title = _("Visit record")

    def footer(canvas: Canvas, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.drawCentredString(A4[0] / 2, 10 * mm, page_word % {"page": doc.page})
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=title,
        invariant=True,  # the same record gives the same bytes
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


_FLAT = TableStyle(
    [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2 * mm),
        ("TOPPADDING", (0, 0), (-1, -1), 0),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
    ]
)


def _styles(*, cjk: bool) -> dict[str, ParagraphStyle]:
    styles = {
        "title": ParagraphStyle(
            "title", fontName=FONT, fontSize=15, leading=20, alignment=1, spaceAfter=5 * mm
        ),
        "heading": ParagraphStyle(
            "heading",
            fontName=FONT,
            fontSize=12,
            leading=16,
            spaceBefore=3 * mm,
            spaceAfter=1 * mm,
            keepWithNext=1,  # never a heading alone at the foot of a page
        ),
        "line": ParagraphStyle("line", fontName=FONT, fontSize=10, leading=15, leftIndent=2 * mm),
        "signature": ParagraphStyle(
            "signature", fontName=FONT, fontSize=10, leading=15, leftIndent=2 * mm
        ),
    }
    for style in styles.values():
        # CJK wrapping may break between any two characters; English wraps at spaces.
        style.wordWrap = "CJK" if cjk else None
    return styles


def _register_font() -> None:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _kv(label: Any, value: str) -> str:
    """``label: value``, with the language's colon (full-width in Chinese)."""
    return f"{label}{_(': ')}{value}"


def _blocks(record: Mapping[str, Any] | None, language: str) -> list[Block]:
    with translation.override(language):
        rec: Mapping[str, Any] = record or {}
        blank = record is None
        gap = BLANK if blank else NOT_RECORDED
        blocks: list[Block] = [
            ("title", (_("Visit record of an elderly person with special difficulties"),))
        ]
        blocks += _header(rec, gap)
        sections = _with_consent(rec)
        for section in SECTIONS:
            blocks.append(("heading", (str(section.label),)))
            values = sections.get(section.name) or {}
            blocks += [
                ("line", _field_parts(spec, values.get(spec.name), gap)) for spec in section.fields
            ]
        blocks += _closing(rec, blank)
        return blocks


def _with_consent(rec: Mapping[str, Any]) -> Mapping[str, Any]:
    """The sections, with the record's top-level ``consent`` when the sections lack it."""
    sections = rec.get("sections") or {}
    consent = sections.get("consent") or {}
    if rec.get("consent") is None or "care_actions" in consent:
        return sections
    return {**sections, "consent": {**consent, "care_actions": bool(rec["consent"])}}


def _header(rec: Mapping[str, Any], gap: str) -> list[Block]:
    elder = mask_name(rec.get("elder_name") or "")
    period = _period(rec.get("started_at"), rec.get("ended_at"), gap)
    lines = [
        (
            _kv(_("Elder"), elder or gap),
            _kv(_("Resident ID"), rec.get("elder_masked_id") or gap),
        ),
        (
            _kv(_("Community"), rec.get("community") or gap),
            _kv(_("Visitor"), rec.get("visitor_name") or gap),
        ),
        (_kv(_("Visit time"), period),),
        (_kv(_("Mode"), _ticks(MODE_CHOICES, {rec.get("mode")})),),
        (_kv(_("Person met"), _ticks(PERSON_MET_CHOICES, {rec.get("person_met")})),),
        (_kv(_("Outcome"), _ticks(OUTCOME_CHOICES, {rec.get("outcome")})),),
    ]
    location = rec.get("location")
    if location:
        lines.append((_kv(_("Check-in location"), _location(location)),))
    return [("line", parts) for parts in lines]


def _closing(rec: Mapping[str, Any], blank: bool) -> list[Block]:
    reasons: Sequence[str] = rec.get("risk_reasons") or ()
    blocks: list[Block] = [
        ("heading", (_("Risk level"),)),
        ("line", (_ticks(RISK_LEVEL_CHOICES, {rec.get("risk_level")}),)),
    ]
    if reasons or blank:
        text = _(", ").join(reason_label(code) for code in reasons)
        blocks.append(("line", (_kv(_("Reasons"), text or BLANK),)))
    if blank:
        blocks += [("heading", (_("Note"),)), *[("line", (WRITING_LINE,))] * 3]
    elif rec.get("notes"):
        blocks += [("heading", (_("Note"),)), ("line", (rec["notes"],))]
    blocks += [
        ("signature", (_kv(_("Visitor’s signature"), BLANK), _kv(_("Date"), BLANK))),
        ("signature", (_kv(_("Signature of the elder or family"), BLANK),)),
    ]
    return blocks


def _field_parts(spec: Field, value: Any, gap: str) -> tuple[str, ...]:
    """One field: its label, its choices with boxes, and its text (``gap`` when none)."""
    if spec.kind is Kind.ONE:
        return (_kv(spec.label, _ticks(spec.choices, {value})),)
    if spec.kind is Kind.MANY:
        return (_kv(spec.label, _ticks(spec.choices, set(value or ()))),)
    if spec.kind is Kind.BOOL:
        return (_kv(spec.label, _yes_no(value, _("Yes"), _("No"))),)
    if spec.kind is Kind.TEXT:
        return (_kv(spec.label, value or gap),)
    item = value or {}
    if spec.kind is Kind.HAZARD:
        mark = _yes_no(item.get("hazard"), _("Hazard"), _("No hazard"))
        return _kv(spec.label, mark), _kv(_("What"), item.get("what") or gap)
    mark = _ticks(spec.choices, {item.get("status")})
    return _kv(spec.label, mark), _kv(_("What is wrong"), item.get("detail") or gap)


def _ticks(choices: Choices, chosen: set[Any]) -> str:
    return " ".join(f"{TICKED if code in chosen else EMPTY} {label}" for code, label in choices)


def _yes_no(value: bool | None, yes: str, no: str) -> str:
    return f"{TICKED if value is True else EMPTY} {yes} {TICKED if value is False else EMPTY} {no}"


def _period(started: Any, ended: Any, gap: str) -> str:
    start, end = _local(started), _local(ended)
    if start is None:
        return f"{BLANK} – {BLANK}" if gap == BLANK else gap
    text = start.strftime("%Y-%m-%d %H:%M")
    if end is not None:
        same_day = end.date() == start.date()
        text += " – " + end.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
    return text


def _local(value: Any) -> datetime | None:
    if isinstance(value, str) and value:
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        raise ValueError("visit times must be timezone-aware")
    return value.astimezone(SHANGHAI)


def _location(location: Mapping[str, Any]) -> str:
    text = f"{float(location['latitude']):.5f}, {float(location['longitude']):.5f}"
    accuracy = location.get("accuracy_m")
    return text + (f" (±{float(accuracy):.0f} m)" if accuracy is not None else "")
