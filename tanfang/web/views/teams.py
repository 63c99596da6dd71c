"""Service teams and their visitors: who visits whom, and who stands in for whom.

For a subdistrict or a community (the user's own, or one below it chosen with ``?area=``):
the service teams working there with their visitors, each visitor's capacity and current
number of elders; a form to assign an elder to a visitor by hand; a button that balances a
community's elders without a visitor over its visitors; substitutions (a visitor away hands
her elders to a substitute) with a form to create one. A district or the city first chooses
a subdistrict: their thousands of visitors make no useful page.

Every write goes through ``tanfang.visits.teams`` (``visitor_assign``, ``assignments_balance``,
``substitution_create``); their ``TeamError`` messages are shown next to the form. The
visitors, communities and elders a form accepts are those in the user's scope, so an outside
record is refused like one that does not exist. Lists of elders are audited (``VIEW_LIST``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tanfang.accounts.access import requires
from tanfang.accounts.models import User
from tanfang.accounts.roles import Capability
from tanfang.accounts.scope import elders_visible_to
from tanfang.areas.models import Area, AreaLevel
from tanfang.registry.models import Elder, LifeStatus, VisitorAssignment
from tanfang.registry.selectors import area_choices, visible_area
from tanfang.visits.models import ServiceProvider, Substitution
from tanfang.visits.teams import (
    TeamError,
    assignments_balance,
    substitution_create,
    visitor_assign,
)
from tanfang.web.views.common import int_param, private
from tanfang.web.views.supervision import (
    WORKLOAD_LEVELS,
    area_filter,
    area_in_scope,
    audit_list,
    visitors_in_scope,
)

UNASSIGNED_SHOWN = 50
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class VisitorChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        name = obj.get_full_name() or obj.username
        return f"{name} · {obj.area.name}" if obj.area else name


class AssignForm(forms.Form):
    elder = forms.IntegerField(label=gettext_lazy("Registry number of the elder"), min_value=1)
    visitor = VisitorChoiceField(label=gettext_lazy("Visitor"), queryset=User.objects.none())
    starts_on = forms.DateField(
        label=gettext_lazy("From"), required=False, widget=DATE_INPUT, help_text=""
    )

    def __init__(self, *args: Any, visitors: QuerySet[User], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "assign-%s")
        super().__init__(*args, **kwargs)
        self.fields["visitor"].queryset = visitors  # type: ignore[attr-defined]
        self.fields["starts_on"].help_text = _("Today when left empty.")


class BalanceForm(forms.Form):
    community = forms.ModelChoiceField(
        label=gettext_lazy("Community"), queryset=Area.objects.none()
    )

    def __init__(self, *args: Any, communities: QuerySet[Area], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "balance-%s")
        super().__init__(*args, **kwargs)
        self.fields["community"].queryset = communities  # type: ignore[attr-defined]


class SubstituteForm(forms.Form):
    visitor = VisitorChoiceField(
        label=gettext_lazy("Visitor who is away"), queryset=User.objects.none()
    )
    substitute = VisitorChoiceField(label=gettext_lazy("Substitute"), queryset=User.objects.none())
    starts_on = forms.DateField(label=gettext_lazy("From"), widget=DATE_INPUT)
    ends_on = forms.DateField(label=gettext_lazy("To (inclusive)"), widget=DATE_INPUT)
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=200, required=False)

    def __init__(self, *args: Any, visitors: QuerySet[User], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "substitute-%s")
        super().__init__(*args, **kwargs)
        for name in ("visitor", "substitute"):
            self.fields[name].queryset = visitors  # type: ignore[attr-defined]


def _communities(user: Any, area: Area) -> QuerySet[Area]:
    return (
        Area.objects.visible_to(user)
        .filter(Q(pk=area.pk) | area_filter(area), level=AreaLevel.COMMUNITY)
        .order_by("code")
    )


def _current(on: dt.date, prefix: str = "") -> Q:
    return Q(**{f"{prefix}starts_on__lte": on}) & (
        Q(**{f"{prefix}ends_on__isnull": True}) | Q(**{f"{prefix}ends_on__gte": on})
    )


def _teams(user: Any, area: Area, on: dt.date) -> list[dict[str, Any]]:
    """The area's service teams, each with its visitors and their current loads; visitors
    without a team come last."""
    visitors = list(
        visitors_in_scope(user, area)
        .select_related("area", "visitor_profile__provider")
        .annotate(load=Count("assignments", filter=_current(on, "assignments__")))
        .order_by("username")
    )
    providers = {
        p.pk: p
        for p in ServiceProvider.objects.filter(area_filter(area, "area__") | Q(area=area))
        .filter(area__in=Area.objects.visible_to(user))
        .select_related("area")
    }
    members: dict[int | None, list[User]] = {}
    for visitor in visitors:
        profile = getattr(visitor, "visitor_profile", None)
        provider = profile.provider if profile is not None else None
        if provider is not None:
            providers.setdefault(provider.pk, provider)
        members.setdefault(provider.pk if provider else None, []).append(visitor)
    teams = [
        {"provider": p, "visitors": _visitor_rows(members.get(p.pk, []))}
        for p in sorted(providers.values(), key=lambda p: (p.area.code, p.name))
    ]
    if None in members:
        teams.append({"provider": None, "visitors": _visitor_rows(members[None])})
    return teams


def _visitor_rows(visitors: Iterable[User]) -> list[dict[str, Any]]:
    rows = []
    for visitor in visitors:
        profile = getattr(visitor, "visitor_profile", None)
        rows.append(
            {
                "visitor": visitor,
                "name": visitor.get_full_name() or visitor.username,
                "load": getattr(visitor, "load", 0),
                "capacity": profile.capacity if profile is not None else None,
                "volunteer": bool(profile and profile.volunteer),
                "available": profile is None or profile.active,
            }
        )
    return rows


def _unassigned(user: Any, area: Area, on: dt.date) -> QuerySet[Elder]:
    """Active elders of the area, not declining visits, without a current visitor: what the
    balancing would hand out."""
    assigned = VisitorAssignment.objects.filter(_current(on)).values("elder_id")
    return (
        elders_visible_to(user, Elder.objects.filter(area_filter(area)))
        .filter(life_status=LifeStatus.ACTIVE)
        .exclude(willing_to_be_visited=False)
        .exclude(pk__in=assigned)
    )


def _visitor_elders(user: Any, visitor: User, on: dt.date) -> list[Elder]:
    current = VisitorAssignment.objects.filter(_current(on), visitor=visitor).values("elder_id")
    return list(
        elders_visible_to(user, Elder.objects.filter(pk__in=current))
        .select_related("community")
        .order_by("name", "id")
    )


def _render(
    request: HttpRequest,
    area: Area,
    *,
    assign_form: AssignForm | None = None,
    balance_form: BalanceForm | None = None,
    substitute_form: SubstituteForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user: Any = request.user
    on = timezone.localdate()
    context: dict[str, Any] = {
        "area": area,
        "areas": area_choices(user=user, current=area),
        "on": on,
        "workable": area.level in WORKLOAD_LEVELS,
    }
    if area.level not in WORKLOAD_LEVELS:
        return render(request, "supervision/teams.html", context, status=status)
    visitors = visitors_in_scope(user, area).select_related("area").order_by("username")
    communities = _communities(user, area)
    unassigned = _unassigned(user, area, on)
    context.update(
        teams=_teams(user, area, on),
        assign_form=assign_form or AssignForm(visitors=visitors),
        balance_form=balance_form
        or BalanceForm(
            communities=communities,
            initial={"community": area if area.level == "community" else None},
        ),
        substitute_form=substitute_form or SubstituteForm(visitors=visitors),
        visitor_choices=list(visitors),
        substitutions=list(
            Substitution.objects.filter(visitor__in=visitors_in_scope(user, area), ends_on__gte=on)
            .select_related("visitor", "substitute")
            .order_by("starts_on", "id")
        ),
        unassigned_count=unassigned.count(),
    )
    shown: list[Elder] = []
    visitor_id = int_param(request, "visitor")
    if visitor_id is not None:
        visitor = visitors_in_scope(user, area).filter(pk=visitor_id).first()
        if visitor is None:
            raise Http404
        shown = _visitor_elders(user, visitor, on)
        context.update(visitor=visitor, visitor_elders=shown)
        audit_list(request, area, "teams-visitor", [e.pk for e in shown], visitor=visitor.username)
    elif area.level == AreaLevel.COMMUNITY:
        shown = list(unassigned.order_by("birth_date", "id")[:UNASSIGNED_SHOWN])
        context["unassigned"] = shown
        audit_list(request, area, "teams-unassigned", [e.pk for e in shown])
    return render(request, "supervision/teams.html", context, status=status)


def _back(area: Area) -> HttpResponse:
    return redirect(f"{reverse('teams')}?area={area.pk}")


def _posted_area(request: HttpRequest) -> Area:
    """The page the form was sent from (hidden ``area``), or the user's own area."""
    user: Any = request.user
    area_id = request.POST.get("area", "")
    if not area_id:
        area: Area = user.area
        return area
    valid = area_id.isdigit() and len(area_id) < 19
    found = visible_area(user=user, area_id=int(area_id)) if valid else None
    if found is None:
        raise Http404
    return found


@requires(Capability.MANAGE_VISITORS)
@private
def teams(request: HttpRequest) -> HttpResponse:
    return _render(request, area_in_scope(request))


@requires(Capability.MANAGE_VISITORS)
@private
@require_POST
def team_assign(request: HttpRequest) -> HttpResponse:
    """Assign an elder to a visitor by hand; her previous visitor's assignment ends the day
    before."""
    user: Any = request.user
    area = _posted_area(request)
    form = AssignForm(request.POST, visitors=visitors_in_scope(user, user.area))
    if form.is_valid():
        data = form.cleaned_data
        elder = elders_visible_to(user, Elder.objects.filter(pk=data["elder"])).first()
        if elder is None:
            form.add_error("elder", _("No elder with this registry number in your area."))
        else:
            try:
                visitor_assign(
                    actor=user, elder=elder, visitor=data["visitor"], on=data["starts_on"]
                )
            except TeamError as exc:
                form.add_error(None, str(exc))
            else:
                name = data["visitor"].get_full_name() or data["visitor"].username
                messages.success(
                    request,
                    _("%(elder)s is now visited by %(visitor)s.")
                    % {"elder": elder.name, "visitor": name},
                )
                return _back(area)
    return _render(request, area, assign_form=form, status=400)


@requires(Capability.MANAGE_VISITORS)
@private
@require_POST
def team_balance(request: HttpRequest) -> HttpResponse:
    """Hand a community's elders without a visitor to the visitors with the most room."""
    user: Any = request.user
    area = _posted_area(request)
    form = BalanceForm(request.POST, communities=_communities(user, user.area))
    if not form.is_valid():
        return _render(request, area, balance_form=form, status=400)
    community = form.cleaned_data["community"]
    try:
        result = assignments_balance(actor=user, community=community)
    except TeamError as exc:
        form.add_error(None, str(exc))
        return _render(request, area, balance_form=form, status=400)
    messages.success(
        request,
        _("%(community)s: %(assigned)s elders assigned, %(left)s left without a visitor.")
        % {
            "community": community.name,
            "assigned": result.assigned,
            "left": result.unassigned_left,
        },
    )
    return _back(area)


@requires(Capability.MANAGE_VISITORS)
@private
@require_POST
def team_substitute(request: HttpRequest) -> HttpResponse:
    """A visitor who is away hands her elders to a substitute for a period."""
    user: Any = request.user
    area = _posted_area(request)
    form = SubstituteForm(request.POST, visitors=visitors_in_scope(user, user.area))
    if form.is_valid():
        data = form.cleaned_data
        try:
            substitution_create(
                actor=user,
                visitor=data["visitor"],
                substitute=data["substitute"],
                starts_on=data["starts_on"],
                ends_on=data["ends_on"],
                reason=data["reason"],
            )
        except TeamError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("The substitution was recorded."))
            return _back(area)
    return _render(request, area, substitute_form=form, status=400)
