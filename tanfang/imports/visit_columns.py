"""The columns of the visits file: the one definition the reader, the xlsx template and
docs/import-visits.md are made from.

Every column has a Chinese header and an English code; a file may use either (or an alias).
Findings are optional: safety hazards and service needs as lists of codes or Chinese words,
``燃气:软管老化;用电`` (an item, optionally ``:`` what it is), ``无`` for none.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from tanfang.imports import values as v
from tanfang.imports.columns import ELDER_COLUMNS, YES_NO_TEXT, Column, _enum, _normal
from tanfang.visits.obligations import SHANGHAI

MODE = {
    "电话": "phone",
    "线上": "online",
    "入户": "in_home",
    "远程监测": "remote_monitoring",
    "综合": "combined",
    "视频": "online",
    "上门": "in_home",
    "phone": "phone",
    "online": "online",
    "in_home": "in_home",
    "remote_monitoring": "remote_monitoring",
    "combined": "combined",
}
PERSON_MET = {
    "老人本人": "elder",
    "家属": "family",
    "无人": "nobody",
    "本人": "elder",
    "老人": "elder",
    "家人": "family",
    "无": "nobody",
    "elder": "elder",
    "family": "family",
    "nobody": "nobody",
}
OUTCOME = {
    "见到": "met",
    "不在家": "not_home",
    "拒绝": "refused",
    "住院": "in_hospital",
    "死亡": "deceased",
    "见面": "met",
    "正常": "met",
    "未见到": "not_home",
    "拒访": "refused",
    "已故": "deceased",
    "去世": "deceased",
    "met": "met",
    "not_home": "not_home",
    "refused": "refused",
    "in_hospital": "in_hospital",
    "deceased": "deceased",
}
ORGANISED_BY = {
    "政府购买": "government",
    "驿站": "station",
    "社会力量": "social",
    "政府": "government",
    "养老驿站": "station",
    "社会组织": "social",
    "government": "government",
    "station": "station",
    "social": "social",
}
HAZARD = {
    "房屋": "house",
    "用水": "water",
    "用电": "electricity",
    "燃气": "gas",
    "取暖": "heating",
    "水": "water",
    "电": "electricity",
    "煤气": "gas",
    "天然气": "gas",
    "供暖": "heating",
    "house": "house",
    "water": "water",
    "electricity": "electricity",
    "gas": "gas",
    "heating": "heating",
}
NEED = {
    "生活照料": "daily_life_care",
    "康复护理": "rehabilitation_nursing",
    "精神慰藉": "emotional_comfort",
    "紧急救援": "emergency_rescue",
    "适老化改造": "age_friendly_modification",
    "辅具": "assistive_devices",
    "其他": "other",
    "daily_life_care": "daily_life_care",
    "rehabilitation_nursing": "rehabilitation_nursing",
    "emotional_comfort": "emotional_comfort",
    "emergency_rescue": "emergency_rescue",
    "age_friendly_modification": "age_friendly_modification",
    "assistive_devices": "assistive_devices",
    "other": "other",
}
TEXT_MAX = 200  # a finding's "what", as on the visit record form

_DATETIME_RE = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*[T ]?\s*"
    r"(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2})\s*秒?)?\s*分?\s*"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


def moment(value: Any) -> dt.datetime:
    """A date and time: 2026-03-05 09:30 (seconds, 2026/3/5 9:30, 2026年3月5日 9时30分, an
    ISO 8601 offset and datetime cells work too). Without an offset it is Beijing time."""
    if isinstance(value, dt.datetime):
        found = value
    elif isinstance(value, dt.date):
        raise v.CellError(_g("a time of day is needed as well, e.g. 2026-03-05 09:30"))
    else:
        token = str(value).strip()
        match = _DATETIME_RE.match(token)
        if match is None and _is_date(token):
            raise v.CellError(_g("a time of day is needed as well, e.g. 2026-03-05 09:30"))
        if match is None:
            raise v.CellError(
                _g("“%(value)s” is not a date and time: write it as 2026-03-05 09:30")
                % {"value": token[:20]}
            )
        year, month, day, hour, minute, second = (int(p or 0) for p in match.groups()[:6])
        try:
            found = dt.datetime(
                year, month, day, hour, minute, second, tzinfo=_zone(match.group(7))
            )
        except ValueError as exc:
            raise v.CellError(
                _g("“%(value)s” is not a date and time of the calendar") % {"value": token[:20]}
            ) from exc
    if found.tzinfo is None:
        found = found.replace(tzinfo=SHANGHAI)
    if found.date() < v.EARLIEST_DATE:
        raise v.CellError(_g("dates before 1900 are not accepted"))
    return found


def _is_date(token: str) -> bool:
    try:
        v.date(future=True)(token)
    except v.CellError:
        return False
    return True


def _zone(offset: str | None) -> dt.tzinfo:
    """Beijing time without an offset; else the fixed offset written (Z, +08:00, +0800)."""
    if not offset:
        return SHANGHAI
    if offset == "Z":
        return dt.UTC
    digits = offset.replace(":", "")
    sign = -1 if digits[0] == "-" else 1
    minutes = int(digits[1:3]) * 60 + int(digits[3:5])
    if minutes > 18 * 60:
        raise ValueError(offset)
    return dt.timezone(sign * dt.timedelta(minutes=minutes))


def findings(tokens: Mapping[str, str]) -> v.Parser:
    """A list of items, each optionally with what it is: ``燃气:软管老化;用电``; 无 for none.
    Returns ``{code: what}`` (what = "" when not said)."""
    code_of = v.choice(tokens)

    def parse(value: Any) -> dict[str, str]:
        token = str(value).strip()
        if token in ("无", "none", "-"):
            return {}
        found: dict[str, str] = {}
        for item in re.split(r"[;；,，、\n]", token):
            item = item.strip()
            if not item:
                continue
            name, _sep, what = re.sub(r"[:：]", ":", item).partition(":")
            what = what.strip()
            if len(what) > TEXT_MAX:
                raise v.CellError(
                    _g("at most %(max)d characters are allowed, this cell has %(length)d")
                    % {"max": TEXT_MAX, "length": len(what)}
                )
            found[code_of(name.strip())] = what
        if not found:
            raise v.CellError(_g("list the items separated by ; or write 无"))
        return found

    return parse


ELDER = _("Elder")
VISIT = _("Visit")
FINDINGS = _("Findings (optional)")
# The elder's columns read as in the elders file.
_ELDER_COLUMN = {column.code: column for column in ELDER_COLUMNS}
MOMENT_TEXT = _("a date and time, e.g. 2026-03-05 09:30 (Beijing time; 2026/3/5 9:30 also works)")

VISIT_COLUMNS: tuple[Column, ...] = (
    replace(
        _ELDER_COLUMN["id_number"],
        section=ELDER,
        meaning=_(
            "Resident ID number of the elder visited (18 characters); she must be in the registry."
        ),
    ),
    replace(
        _ELDER_COLUMN["name"],
        section=ELDER,
        meaning=_(
            "The elder's name; when given it must be the registry's name for that ID number."
        ),
        aliases=("老人姓名",),
    ),
    Column(
        "external_id",
        "外部编号",
        VISIT,
        _(
            "The visit's number in the system it comes from. With the source system it makes "
            "the import idempotent: a visit already imported is not imported again. When "
            "blank, the elder, start time and mode identify the visit."
        ),
        _("text, at most 64 characters"),
        "ZF-2026-000123",
        v.text(64),
        as_text=True,
        aliases=("记录编号", "探访记录编号"),
        width=18,
    ),
    Column(
        "source_system",
        "来源系统",
        VISIT,
        _("The system the visit was recorded in; default: the import's source (--source)."),
        _("text, at most 64 characters"),
        "东城区驿站服务系统",
        v.text(64),
        width=18,
    ),
    _enum("mode", "探访方式", VISIT, _("How the elder was visited; required."), MODE, "入户"),
    Column(
        "started_at",
        "开始时间",
        VISIT,
        _("When the visit started; required. Not in the future."),
        MOMENT_TEXT,
        "2026-03-05 09:30",
        moment,
        aliases=("探访时间",),
        width=18,
    ),
    Column(
        "ended_at",
        "结束时间",
        VISIT,
        _("When it ended; blank: the start time. At most 12 hours after the start."),
        MOMENT_TEXT,
        "2026-03-05 10:00",
        moment,
        width=18,
    ),
    _enum(
        "person_met",
        "见到的人",
        VISIT,
        _("Whom the visitor met; required."),
        PERSON_MET,
        "老人本人",
    ),
    _enum(
        "outcome",
        "结果",
        VISIT,
        _(
            "The outcome; required. In hospital and deceased update the elder's life status "
            "in the registry."
        ),
        OUTCOME,
        "见到",
    ),
    Column(
        "visitor_name",
        "探访人",
        VISIT,
        _("Who visited; required."),
        _("text, at most 64 characters"),
        "李红",
        v.text(64),
        aliases=("探访人员", "探访人姓名"),
    ),
    _enum(
        "organised_by",
        "组织方",
        VISIT,
        _(
            "Who organised the visit: a government-purchased visit, the station under "
            "contract, or social forces; blank: government-purchased."
        ),
        ORGANISED_BY,
        "驿站",
    ),
    Column(
        "notes",
        "情况记录",
        VISIT,
        _("What the visitor noted."),
        _("text, at most 2000 characters"),
        "精神状态良好",
        v.text(2000),
        aliases=("备注", "探访情况"),
        width=30,
    ),
    Column(
        "hazards",
        "安全隐患",
        FINDINGS,
        _("Safety hazards found, each optionally with what it is; 无 for none."),
        _("房屋 / 用水 / 用电 / 燃气 / 取暖, separated by ;, e.g. 燃气:软管老化;用电"),
        "燃气:软管老化",
        findings(HAZARD),
        width=24,
    ),
    Column(
        "needs",
        "服务需求",
        FINDINGS,
        _("Service needs found; 其他 needs what it is (其他:理发)."),
        _("生活照料 / 康复护理 / 精神慰藉 / 紧急救援 / 适老化改造 / 辅具 / 其他, separated by ;"),
        "康复护理",
        findings(NEED),
        width=24,
    ),
    Column(
        "consent",
        "同意关爱",
        FINDINGS,
        _(
            "The elder agrees to the care actions the findings call for (they are opened "
            "with owners and due dates); blank: no."
        ),
        YES_NO_TEXT,
        "是",
        v.boolean,
        offered=("是", "否"),
    ),
)

REQUIRED = ("id_number", "mode", "started_at", "person_met", "outcome", "visitor_name")
IGNORED_HEADERS = frozenset({"序号", "no"})
HEADER_OF = {column.code: column.header for column in VISIT_COLUMNS}


def find_column(header: str) -> Column | None:
    """The column a header names: Chinese header, English code or an alias."""
    return _BY_NAME.get(_normal(header))


_BY_NAME: dict[str, Column] = {
    _normal(name): column
    for column in VISIT_COLUMNS
    for name in (column.header, column.code, *column.aliases)
}
