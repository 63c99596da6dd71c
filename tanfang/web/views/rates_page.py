"""The visit rates page and its drill-down to the elders not visited.

``/rates/?period=2026-W48|2026-11&area=ID``: the weekly (default: the current ISO week in
Asia/Shanghai) or monthly rate of an area (the user's own by default) and of each of its
children, with the target (100 %), the area's excluded elders by reason, and the trend of
its last eight periods of the same kind. Counts come from ``tanfang.visits.rates``
(``rates_for``, ``rate_trend``), whose module docstring defines who is due and who counts.

The trend is an SVG bar chart drawn here, on the server: eight bars need no charting
library, work without scripts and print. It always ends with the current period (a closed
period keeps its snapshot; an earlier choice is highlighted when it is one of the eight).

``/rates/missed/?period=…&area=ID``: the due elders of the area not visited in the period,
50 a page by keyset (community code, elder id), names linking to the elder page; each page
shown writes one ``VIEW_LIST`` audit entry like the elder list.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.areas.models import Area, AreaLevel
from tanfang.registry.selectors import area_choices
from tanfang.visits.models import ElderVisitStatus
from tanfang.visits.obligations import Frequency
from tanfang.visits.rates import (
    EXCLUSION_REASONS,
    RATE_LEVELS,
    RateError,
    RatePeriod,
    RateRow,
    missed_elders,
    period_containing,
    rate_period,
    rate_trend,
    rates_for,
)
from tanfang.web.labels import category_label
from tanfang.web.views.common import int_param, private
from tanfang.web.views.supervision import area_in_scope, audit_list, percent

PAGE_SIZE = 50
ONE_DAY = dt.timedelta(days=1)
TREND_PERIODS = 8

EXCLUSION_LABELS = {
    "deceased": gettext_lazy("Deceased"),
    "moved_away": gettext_lazy("Moved away"),
    "in_institution": gettext_lazy("In an institution"),
    "in_hospital": gettext_lazy("In hospital"),
    "declined": gettext_lazy("Declined visits"),
}

# The chart's geometry, in SVG user units (the picture scales to the width of the page).
CHART_WIDTH = 320
CHART_TOP = 16
CHART_BAR_HEIGHT = 100
CHART_BOTTOM = 20


def _rate_area(request: HttpRequest) -> Area:
    area = area_in_scope(request)
    if area.level not in RATE_LEVELS:
        raise Http404
    return area


def _period(request: HttpRequest, today: dt.date) -> tuple[RatePeriod, str]:
    """The period asked for, or the current week with the reason the request was refused."""
    current = period_containing(today, Frequency.WEEK)
    raw = request.GET.get("period", "").strip()
    if not raw:
        return current, ""
    try:
        period = rate_period(raw)
    except RateError as exc:
        return current, str(exc)
    if period.start > today:
        return current, _("The period %(key)s has not begun: there is no rate yet.") % {
            "key": period.key
        }
    return period, ""


def _rate_cells(row: RateRow) -> dict[str, Any]:
    return {
        "row": row,
        "rate": percent(row.visited, row.due),
        "missed": row.due - row.visited,
        "met": row.due > 0 and row.visited >= row.due,
    }


def _neighbours(period: RatePeriod, today: dt.date) -> dict[str, str]:
    """Keys of the period before, the period after (when it has begun) and the current week
    and month, for the links beside the title."""
    previous = period_containing(period.start - ONE_DAY, period.kind)
    following = period_containing(period.end + ONE_DAY, period.kind)
    return {
        "previous": previous.key,
        "next": following.key if following.start <= today else "",
        "weekly": period_containing(today, Frequency.WEEK).key,
        "monthly": period_containing(today, Frequency.MONTH).key,
    }


def trend_chart(rows: list[RateRow], selected: str) -> dict[str, Any]:
    """Bars of the trend (oldest first) as SVG geometry: x, y, height, labels."""
    slot = CHART_WIDTH / max(len(rows), 1)
    bar = slot * 0.6
    base = CHART_TOP + CHART_BAR_HEIGHT
    bars = []
    for i, row in enumerate(rows):
        share = min(row.visited / row.due, 1.0) if row.due else 0.0
        height = round(share * CHART_BAR_HEIGHT, 1)
        x = round(i * slot + (slot - bar) / 2, 1)
        bars.append(
            {
                "key": row.period,
                "short": row.period[5:],
                "x": x,
                "y": round(base - height, 1),
                "width": round(bar, 1),
                "height": height,
                "label_x": round(x + bar / 2, 1),
                "label_y": round(base - height - 4, 1),
                "rate": percent(row.visited, row.due),
                "due": row.due,
                "visited": row.visited,
                "met": row.due > 0 and row.visited >= row.due,
                "selected": row.period == selected,
            }
        )
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": base + CHART_BOTTOM,
        "target_y": CHART_TOP,
        "base_y": base,
        "axis_y": base + CHART_BOTTOM - 5,
    }


@requires(Capability.VIEW_RATES)
@private
def rates(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    area = _rate_area(request)
    today = timezone.localdate()
    period, period_error = _period(request, today)
    nodes = rates_for(area=area, period=period, on=today, user=user)
    children = [r for r in nodes[1:] if _is_child(r, area)]
    ids = dict(
        Area.objects.filter(code__in=[r.area_code for r in children]).values_list("code", "pk")
    )
    own = nodes[0] if nodes else None
    trend = rate_trend(area=area, kind=period.kind, periods=TREND_PERIODS, on=today)
    context: dict[str, Any] = {
        "area": area,
        "areas": area_choices(user=user, current=area),
        "period": period,
        "period_error": period_error,
        "weekly": period.kind == Frequency.WEEK,
        "nearby": _neighbours(period, today),
        "own": _rate_cells(own) if own else None,
        "rows": [{**_rate_cells(r), "area_id": ids.get(r.area_code)} for r in children],
        "excluded": [
            (k, EXCLUSION_LABELS.get(k, k), own.excluded.get(k, 0))
            for k in EXCLUSION_REASONS
            if own is not None
        ],
        "chart": trend_chart(trend, period.key),
        "snapshot": own is not None and own.basis == "snapshot",
        "keep": [("period", period.key)],
    }
    return render(request, "supervision/rates.html", context)


def _is_child(row: RateRow, area: Area) -> bool:
    """Whether a row of the subtree is a direct child of ``area`` (rows are in tree order;
    a child is one level below)."""
    levels = list(RATE_LEVELS)
    return area.level != AreaLevel.COMMUNITY and row.level == levels[levels.index(area.level) + 1]


@requires(Capability.VIEW_RATES)
@private
def rates_missed(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    area = _rate_area(request)
    today = timezone.localdate()
    period, period_error = _period(request, today)
    statuses = missed_elders(user=user, area=area, period=period, on=today).order_by(
        "community__code", "elder_id"
    )
    after = int_param(request, "after")
    if after is not None:
        mark = ElderVisitStatus.objects.filter(pk=after).values_list("community__code", flat=True)
        code = mark.first()
        if code is not None:
            statuses = statuses.filter(
                Q(community__code__gt=code) | Q(community__code=code, elder_id__gt=after)
            )
    page = list(statuses[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    audit_list(
        request,
        area,
        "rates-missed",
        [s.elder_id for s in page],
        period=period.key,
    )
    rows = [
        {
            "status": s,
            "elder": s.elder,
            "url": reverse("elder-detail", args=[s.elder_id]),
            "categories": [category_label(c) for c in s.elder.categories or ()],
        }
        for s in page
    ]
    query: dict[str, str | int] = {"period": period.key, "area": area.pk}
    return render(
        request,
        "supervision/rates_missed.html",
        {
            "area": area,
            "period": period,
            "period_error": period_error,
            "rows": rows,
            "first": after is None,
            "next_url": f"?{urlencode({**query, 'after': page[-1].elder_id})}" if more else "",
            "first_url": f"?{urlencode(query)}",
            "back_url": f"{reverse('rates')}?{urlencode(query)}",
        },
    )
