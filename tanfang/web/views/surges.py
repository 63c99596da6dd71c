"""Surges: a supervisor declares more frequent visits for an area and some days (a heat wave
in a district for five days), and everyone sees the surges that concern their area.

Declaring goes through ``tanfang.visits.teams.surge_declare``, which also recomputes the due
dates of the area's elders. The area must be the user's own or one below it, at most two
levels down (a city declares for a district or a subdistrict, not for one community among
thousands — a district or subdistrict user does that). A surge may not end in the past (it
would make elders overdue after the fact) and lasts at most ``MAX_SURGE_DAYS``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.areas.models import LEVEL_ORDER, Area, AreaLevel
from tanfang.visits.models import Frequency, ModeRequirement, VisitSurge
from tanfang.visits.teams import TeamError, surge_declare
from tanfang.web.labels import category_choices, category_label
from tanfang.web.views.common import private
from tanfang.web.views.supervision import area_filter

MAX_SURGE_DAYS = 92
PAST_SHOWN = 50
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class AreaChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return "\u2003" * LEVEL_ORDER.index(obj.level) + obj.name


class SurgeForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=200,
        help_text=gettext_lazy("For example: heat wave, cold spell, snowstorm."),
    )
    area = AreaChoiceField(label=gettext_lazy("Area"), queryset=Area.objects.none())
    starts_on = forms.DateField(label=gettext_lazy("From"), widget=DATE_INPUT)
    ends_on = forms.DateField(label=gettext_lazy("To (inclusive)"), widget=DATE_INPUT)
    frequency = forms.ChoiceField(
        label=gettext_lazy("Visit"), choices=Frequency.choices, initial=Frequency.DAY
    )
    mode = forms.ChoiceField(
        label=gettext_lazy("Mode required"),
        choices=ModeRequirement.choices,
        initial=ModeRequirement.PHONE,
    )
    categories_all = forms.MultipleChoiceField(
        label=gettext_lazy("Only elders in all of these categories"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("None ticked: every elder of the area."),
    )

    def __init__(self, *args: Any, areas: QuerySet[Area], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "surge-%s")
        super().__init__(*args, **kwargs)
        self.fields["area"].queryset = areas  # type: ignore[attr-defined]
        self.fields["categories_all"].choices = category_choices()  # type: ignore[attr-defined]

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        if not reason:
            raise forms.ValidationError(_("Say why visits must be more frequent."))
        return reason

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        starts, ends = data.get("starts_on"), data.get("ends_on")
        if starts and ends:
            if ends < starts:
                self.add_error("ends_on", _("The surge cannot end before it starts."))
            elif ends < timezone.localdate():
                self.add_error("ends_on", _("A surge cannot end in the past."))
            elif (ends - starts).days + 1 > MAX_SURGE_DAYS:
                self.add_error(
                    "ends_on",
                    _("A surge lasts at most %(n)s days; declare another one after it.")
                    % {"n": MAX_SURGE_DAYS},
                )
        return data


def declarable_areas(user: Any) -> QuerySet[Area]:
    """The user's area and the areas up to two levels below it."""
    own: Area = user.area
    depth = LEVEL_ORDER.index(own.level)
    levels = [lvl for lvl in LEVEL_ORDER[depth : depth + 3] if lvl != AreaLevel.GRID]
    return (
        Area.objects.visible_to(user)
        .filter(Q(pk=own.pk) | area_filter(own), level__in=levels)
        .order_by("code")
    )


def _concerning(user: Any) -> QuerySet[VisitSurge]:
    """Surges declared for the user's area, an area above it, or an area below it."""
    own: Area = user.area
    above = [own.ancestor_id(level) for level in LEVEL_ORDER[: LEVEL_ORDER.index(own.level)]]
    below = Area.objects.visible_to(user).values("pk")
    return VisitSurge.objects.filter(
        Q(area_id__in=[a for a in above if a]) | Q(area__in=below)
    ).select_related("area", "declared_by")


def _rows(surges: list[VisitSurge]) -> list[dict[str, Any]]:
    frequencies = dict(Frequency.choices)
    modes = dict(ModeRequirement.choices)
    return [
        {
            "surge": s,
            "frequency": frequencies.get(s.frequency, s.frequency),
            "mode": modes.get(s.mode, s.mode),
            "categories": [category_label(c) for c in s.categories_all or ()],
            "declared_by": (s.declared_by.get_full_name() or s.declared_by.username)
            if s.declared_by
            else "",
        }
        for s in surges
    ]


def _code(area: Area, starts_on: dt.date) -> str:
    return f"{area.code}-{starts_on:%Y%m%d}-{uuid.uuid4().hex[:6]}"


@requires(Capability.VIEW_RATES)
@private
def surge_list(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    today = timezone.localdate()
    surges = _concerning(user)
    current = list(surges.filter(ends_on__gte=today, active=True).order_by("starts_on", "id"))
    past = list(
        surges.filter(Q(ends_on__lt=today) | Q(active=False)).order_by("-starts_on", "-id")[
            :PAST_SHOWN
        ]
    )
    return render(
        request,
        "supervision/surges.html",
        {"current": _rows(current), "past": _rows(past), "today": today, "past_limit": PAST_SHOWN},
    )


@requires(Capability.DECLARE_SURGE)
@private
def surge_new(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    areas = declarable_areas(user)
    if request.method != "POST":
        today = timezone.localdate()
        form = SurgeForm(
            areas=areas, initial={"area": user.area, "starts_on": today, "ends_on": today}
        )
        return render(request, "supervision/surge_form.html", {"form": form})
    form = SurgeForm(request.POST, areas=areas)
    if form.is_valid():
        data = form.cleaned_data
        try:
            surge = surge_declare(
                actor=user,
                code=_code(data["area"], data["starts_on"]),
                area=data["area"],
                reason=data["reason"],
                starts_on=data["starts_on"],
                ends_on=data["ends_on"],
                frequency=data["frequency"],
                mode=data["mode"],
                categories_all=sorted(data["categories_all"]),
            )
        except TeamError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                _("The surge was declared for %(area)s: the due dates of its elders are updated.")
                % {"area": surge.area.name},
            )
            return redirect("surges")
    return render(request, "supervision/surge_form.html", {"form": form}, status=400)
