"""The data-quality page of an area: what is missing, stale or doubtful, and who it is.

Counts come from one grouped query (see ``selectors.quality_summary``); the list of elders
behind a count is paged and audited like the elder list.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.areas.models import Area, AreaLevel
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.selectors import (
    MISSING_FACT_GROUPS,
    PAGE_SIZE,
    QUALITY_PROBLEMS,
    QualitySummary,
    area_choices,
    duplicate_count,
    duplicate_groups,
    missing_group_key,
    quality_problem_page,
    quality_summary,
    visible_area,
)
from tanfang.web.forms import QualityForm
from tanfang.web.labels import problem_label
from tanfang.web.views.common import int_param, private
from tanfang.web.views.elders import list_rows

# Counting a district or the whole city reads every elder's row (seconds at a million), so
# those counts are kept for a few minutes; a subdistrict or community is counted live.
CACHED_LEVELS = (AreaLevel.CITY, AreaLevel.DISTRICT)
CACHE_SECONDS = 600


def _counts(*, user: Any, area: Area, today: dt.date) -> tuple[QualitySummary, int, dt.datetime]:
    """The counts of ``area``: the same for every user who may see the area (each role
    sees a whole subtree), so they are cached by area and day."""
    key = f"tanfang:quality:{area.pk}:{today.isoformat()}"
    if area.level in CACHED_LEVELS:
        cached = cache.get(key)
        if cached is not None:
            return cast(tuple[QualitySummary, int, dt.datetime], cached)
    counts = (
        quality_summary(user=user, area=area, today=today),
        duplicate_count(user=user, area=area),
        timezone.now(),
    )
    if area.level in CACHED_LEVELS:
        cache.set(key, counts, CACHE_SECONDS)
    return counts


@requires(Capability.VIEW_DATA_QUALITY)
@private
def quality(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    area = visible_area(user=user, area_id=int_param(request, "area")) or user.area
    form = QualityForm(request.GET or None, areas=area_choices(user=user, current=area))
    problem = ""
    if form.is_bound and form.is_valid():
        problem = form.cleaned_data.get("problem") or ""
    today = timezone.localdate()
    summary, duplicates, counted_at = _counts(user=user, area=area, today=today)
    column_labels = [_("Elders"), *(problem_label(p) for p in QUALITY_PROBLEMS)]
    context: dict[str, Any] = {
        "form": form,
        "area": area,
        "summary": summary,
        "duplicates": duplicates,
        "counted_at": counted_at,
        "problem": problem,
        "problem_label": problem_label(problem) if problem else "",
        "main_problems": [(p, problem_label(p), summary.total[p]) for p in QUALITY_PROBLEMS],
        "missing_groups": [
            (
                missing_group_key(g),
                problem_label(missing_group_key(g)),
                summary.total[missing_group_key(g)],
            )
            for g in MISSING_FACT_GROUPS
        ],
        "child_rows": [
            {
                "area": r.area,
                "counts": list(
                    zip(
                        column_labels,
                        [r.counts[k] for k in ("elders", *QUALITY_PROBLEMS)],
                        strict=True,
                    )
                ),
            }
            for r in summary.rows
        ],
        "column_labels": column_labels,
    }
    shown: list[int] = []
    if problem == "duplicates":
        offset = int_param(request, "offset") or 0
        groups, more = duplicate_groups(user=user, area=area, offset=offset)
        context.update(
            groups=[{"group": g, "rows": list_rows(g.elders)} for g in groups],
            next_offset=offset + PAGE_SIZE if more else None,
        )
        shown = [e.pk for g in groups for e in g.elders]
    elif problem:
        page = quality_problem_page(
            user=user, area=area, problem=problem, today=today, after=int_param(request, "after")
        )
        context.update(page=page, rows=list_rows(page.elders))
        shown = [e.pk for e in page.elders]
    if problem:
        audit_record(
            actor=user,
            action=AuditAction.VIEW_LIST,
            area_code=area.code,
            details={
                "page": "quality",
                "area": area.code,
                "problem": problem,
                "shown": len(shown),
                "elder_ids": shown,
            },
            request=request,
        )
    query = request.GET.copy()
    for key in ("after", "offset"):
        query.pop(key, None)
    context["filter_query"] = query.urlencode()
    return render(request, "web/quality.html", context)
