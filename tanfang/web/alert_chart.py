"""The chart of an alert: the home's last 48 hours against its usual pattern, as inline SVG.

Server-rendered, no script: a bar per hour of use, a step line of the home's usual use at
the same hours, a dashed line where the anomaly began and a solid one where it was detected.
The SVG has a ``viewBox`` and a width of 100 %, so it fits a 375-pixel phone as well as a
desk. The series is the one live detection stores in the alert's evidence
(``monitoring/chart.py`` has its shape and how it is computed)::

    {"series": {"start": <epoch s>, "step_s": 3600, "unit": "L" | "Wh",
                "usage": [48 numbers or null], "usual": [48 numbers or null]}}

A malformed or missing series draws nothing (the page says so) rather than failing.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _

WIDTH, HEIGHT = 360, 190
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 14, 34
MAX_POINTS = 24 * 14


@dataclass(frozen=True)
class Series:
    start: int  # epoch s where the first bucket begins
    step_s: int
    usage: list[float | None]
    usual: list[float | None]
    unit: str  # canonical: L (water, gas) or Wh (electricity)

    @property
    def end(self) -> int:
        return self.start + self.step_s * len(self.usage)


def _epoch(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return int(moment.timestamp())
    return None


def _numbers(values: Any) -> list[float | None] | None:
    if not isinstance(values, list):
        return None
    out: list[float | None] = []
    for v in values:
        if v is None or isinstance(v, bool):
            out.append(None)
        elif isinstance(v, int | float) and math.isfinite(v):
            out.append(float(v))
        else:
            out.append(None)
    return out


def series_from_evidence(evidence: Any, *, unit: str = "") -> Series | None:
    """The series stored in an alert's evidence, or None when there is none usable."""
    raw = evidence.get("series") if isinstance(evidence, dict) else None
    if not isinstance(raw, dict):
        return None
    start = _epoch(raw.get("start"))
    try:
        step_s = int(raw.get("step_s", 3600))
    except (TypeError, ValueError):
        return None
    usage = _numbers(raw.get("usage"))
    if start is None or step_s <= 0 or not usage or len(usage) > MAX_POINTS:
        return None
    usual = _numbers(raw.get("usual")) or []
    usual = (usual + [None] * len(usage))[: len(usage)]
    return Series(start, step_s, usage, usual, str(raw.get("unit") or unit or ""))


def display_unit(unit: str) -> tuple[str, float]:
    """(unit shown, factor from the canonical unit)."""
    if unit == "Wh":
        return "kWh", 0.001
    return unit or "", 1.0


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * exp:
            return m * exp
    return 10 * exp


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def chart(
    series: Series,
    *,
    started_at: dt.datetime | None,
    detected_at: dt.datetime | None,
    tz: str = "Asia/Shanghai",
) -> dict[str, Any]:
    """Everything ``monitoring/_chart.html`` draws, in the SVG's coordinates."""
    unit, factor = display_unit(series.unit)
    usage = [None if v is None else max(v, 0.0) * factor for v in series.usage]
    usual = [None if v is None else max(v, 0.0) * factor for v in series.usual]
    top = _nice_max(max([v for v in usage + usual if v is not None] or [0.0]))
    n = len(usage)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step_x = plot_w / n

    def x_at(t: float) -> float:
        return round(LEFT + (t - series.start) / series.step_s * step_x, 2)

    def y_of(v: float) -> float:
        return round(TOP + plot_h - v / top * plot_h, 2)

    bars = []
    for i, v in enumerate(usage):
        if v is None:
            bars.append({"x": round(LEFT + i * step_x, 2), "missing": True})
            continue
        h = max(v / top * plot_h, 0.8 if v > 0 else 0.0)
        bars.append(
            {
                "x": round(LEFT + i * step_x + step_x * 0.12, 2),
                "y": round(TOP + plot_h - h, 2),
                "h": round(h, 2),
                "missing": False,
            }
        )
    # The usual pattern as a step line; a gap where nothing was learned.
    paths, current = [], ""
    for i, v in enumerate(usual):
        if v is None:
            if current:
                paths.append(current)
            current = ""
            continue
        x0, x1, y = round(LEFT + i * step_x, 2), round(LEFT + (i + 1) * step_x, 2), y_of(v)
        current += f"{'L' if current else 'M'}{x0},{y} L{x1},{y} "
    if current:
        paths.append(current)
    zone = ZoneInfo(tz)
    ticks = []
    first = dt.datetime.fromtimestamp(series.start, zone).replace(minute=0, second=0)
    moment = first
    while moment.timestamp() <= series.end:
        if moment.timestamp() >= series.start and moment.hour in (0, 6, 12, 18):
            ticks.append(
                {
                    "x": x_at(moment.timestamp()),
                    "label": moment.strftime("%m-%d") if moment.hour == 0 else f"{moment:%H}:00",
                    "major": moment.hour == 0,
                }
            )
        moment += dt.timedelta(hours=1)
    markers = []
    for kind, when, label in (
        ("began", started_at, _("began")),
        ("detected", detected_at, _("detected")),
    ):
        if when is None:
            continue
        t = int(when.timestamp())
        if series.start <= t <= series.end:
            markers.append({"kind": kind, "x": x_at(t), "label": label})
    last_day = usage[-round(86400 / series.step_s) :] if n else []
    usual_day = usual[-round(86400 / series.step_s) :] if n else []
    known = [v for v in last_day if v is not None]
    usual_known = [v for v in usual_day if v is not None]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": TOP + plot_h,
        "bar_w": round(step_x * 0.76, 2),
        "gap_w": round(step_x, 2),
        "bars": bars,
        "usual_paths": paths,
        "ticks": ticks,
        "markers": markers,
        "y_max": _fmt(top),
        "y_mid": _fmt(top / 2),
        "y_mid_at": round(TOP + plot_h / 2, 2),
        "unit": unit,
        "has_usual": bool(paths),
        "last_day": _fmt(sum(known)) if known else None,
        "usual_day": _fmt(sum(usual_known)) if usual_known else None,
        "hours": round(n * series.step_s / 3600),
        "plot_h": plot_h,
        "label_x": LEFT - 4,
        "label_y": TOP + plot_h + 16,
        "max_y": TOP + 4,
        "unit_y": TOP - 4,
        "tick_y": TOP + plot_h + 4,
    }
