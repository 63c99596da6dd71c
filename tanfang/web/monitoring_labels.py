"""Monitoring alerts in the reader's language: severities, levels, actions, and each rule in
plain words from the evidence the detector stored.

The rule names are those of the rule book (``monitoring/detection/config.py``) and of device
alarms (``device_sos`` ...). A rule a district named itself falls back to its kind, so a new
rule is never shown as a bare code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.monitoring.models import (
    AlertAction,
    AlertKind,
    AlertLevel,
    AlertOutcome,
    DeviceKind,
    Severity,
)

# Most urgent first; severities of the rule book (high, medium, low) are ranked alongside the
# stored ones in case a detector stores them unmapped.
SEVERITY_RANK = {
    "critical": 0,
    "high": 1,
    "warning": 1,
    "medium": 2,
    "low": 3,
    "info": 3,
    "technical": 4,
}


def severity_label(severity: str) -> str:
    try:
        return str(Severity(severity).label)
    except ValueError:
        extra = {"high": _("High"), "medium": _("Medium"), "low": _("Low")}
        return extra.get(severity, severity)


def severity_class(severity: str) -> str:
    """A CSS word for the severity: critical, warning or info."""
    rank = SEVERITY_RANK.get(severity, 3)
    return "critical" if rank == 0 else "warning" if rank <= 2 else "info"


def kind_label(kind: str) -> str:
    try:
        return str(AlertKind(kind).label)
    except ValueError:
        return kind


def device_label(kind: str) -> str:
    try:
        return str(DeviceKind(kind).label)
    except ValueError:
        return kind_label(AlertKind.DEVICE)


def level_label(level: str) -> str:
    try:
        return str(AlertLevel(level).label)
    except ValueError:
        return level


def action_label(action: str) -> str:
    try:
        return str(AlertAction(action).label)
    except ValueError:
        return action


def outcome_label(outcome: str) -> str:
    try:
        return str(AlertOutcome(outcome).label)
    except ValueError:
        return outcome


def utility_noun(utility: str) -> str:
    return {
        "water": _("water"),
        "electricity": _("electricity"),
        "gas": _("gas"),
    }.get(utility, utility)


def device_words(device_kind: str) -> str:
    return {
        "sos": _("The SOS button was pressed."),
        "fall": _("The fall detector raised an alarm."),
        "smoke": _("The smoke detector raised an alarm."),
        "gas": _("The gas detector raised an alarm."),
        "watch": _("The location watch raised an alarm."),
    }.get(device_kind, _("A home device raised an alarm."))


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _hours(value: Any) -> str:
    number = _num(value)
    if number is None:
        return "?"
    return f"{number:.1f}".rstrip("0").rstrip(".")


def _amount(value: Any, unit: str) -> str:
    """An amount in the unit people read: litres of water or gas, kWh of electricity."""
    number = _num(value)
    if number is None:
        return "?"
    if unit == "Wh":
        return f"{number / 1000:.2f} kWh"
    if unit == "L" and number >= 1000:
        return f"{number / 1000:.2f} m³"
    return f"{number:.0f} {unit}" if number >= 10 else f"{number:.1f} {unit}"


def rule_text(rule: str, kind: str, evidence: dict[str, Any], utility: str = "") -> str:
    """What the detector saw, in one or two sentences."""
    ev = evidence or {}
    noun = utility_noun(utility) if utility else _("the meter")
    if kind == AlertKind.DEVICE or rule.startswith("device_"):
        device_kind = str(ev.get("device_kind") or rule.removeprefix("device_"))
        return device_words(device_kind)
    if kind == AlertKind.MISSED_ROUTINE:
        text = _(
            "No %(utility)s used for %(hours)s hours: longer than this home is usually quiet "
            "at this time of day (alert after %(threshold)s hours)."
        ) % {
            "utility": noun,
            "hours": _hours(ev.get("inactive_hours")),
            "threshold": _hours(ev.get("threshold_hours")),
        }
        return text
    if kind == AlertKind.INACTIVITY:
        unit = str(ev.get("unit") or "")
        if ev.get("mode") == "sum" and ev.get("max_total") is not None:
            return _(
                "Less than %(limit)s of %(utility)s used in %(hours)s hours "
                "(%(total)s in that time)."
            ) % {
                "limit": _amount(ev.get("max_total"), unit),
                "utility": noun,
                "hours": _hours(ev.get("window_hours")),
                "total": _amount(ev.get("window_total"), unit),
            }
        return _(
            "%(Utility)s use has stayed at the home's base load for %(hours)s hours: "
            "nothing switched on."
        ) % {"Utility": noun.capitalize(), "hours": _hours(ev.get("window_hours"))}
    if kind == AlertKind.LOW_USAGE:
        unit = str(ev.get("unit") or "")
        return _(
            "Only %(today)s of %(utility)s used today by %(hour)s:00, far below this home's "
            "usual %(usual)s by that hour."
        ) % {
            "today": _amount(ev.get("today_total"), unit),
            "utility": noun,
            "hour": ev.get("by_local_hour", "?"),
            "usual": _amount(ev.get("usual_low"), unit),
        }
    if kind == AlertKind.CONTINUOUS_USE:
        return _(
            "%(Utility)s has been flowing without a break for %(hours)s hours "
            "(alert after %(threshold)s hours)."
        ) % {
            "Utility": noun.capitalize(),
            "hours": _hours(ev.get("flowing_hours")),
            "threshold": _hours(ev.get("threshold_hours")),
        }
    if kind == AlertKind.DATA_SILENCE:
        if ev.get("silent_hours") is None:
            return _("The meter has not sent any reading yet.")
        return _(
            "The meter has sent no reading for %(hours)s hours. This is a technical fault "
            "for the data partner, not a sign about the person."
        ) % {"hours": _hours(ev.get("silent_hours"))}
    return kind_label(kind)


def also_rules(evidence: dict[str, Any]) -> list[str]:
    """Other rules that agreed when the alert was raised (the detector lists their names)."""
    also = (evidence or {}).get("also") or []
    return [str(name) for name in also if isinstance(name, str)]


def local(moment: dt.datetime | None) -> dt.datetime | None:
    return timezone.localtime(moment) if moment is not None else None
