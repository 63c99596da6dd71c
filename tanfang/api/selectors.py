"""Reads behind the API's lists. Every one starts from ``visible_to(user)``; the elder list
reuses the web list's selector, so both filter and search the same way."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError

from tanfang.areas.models import Area
from tanfang.registry.models import Elder, FirstContact
from tanfang.registry.selectors import ElderFilters, area_column, elders_filtered


def visible_area(user: Any, code: str, field: str = "area") -> Area:
    """The area with ``code`` if ``user`` may see it; an unknown and a hidden code are alike."""
    area = Area.objects.visible_to(user).filter(code=code).first()
    if area is None:
        raise ValidationError({field: [_("Unknown area code.")]})
    return area


def elders_list(user: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The elders ``user`` may see, filtered as the web list filters them (by default only
    the active ones; ``life_status=all`` for every one); and the filters as the audit log
    keeps them (identifiers masked)."""
    filters = ElderFilters(
        q=params.get("q", ""),
        area=visible_area(user, params["area"]) if params.get("area") else None,
        category=params.get("category", ""),
        life_status=params.get("life_status", ""),
    )
    queryset = elders_filtered(user=user, filters=filters)
    logged = filters.for_audit()
    # Yes/no filters: true and false both narrow the list (the web form has only "yes").
    for flag in ("focus", "advanced_age"):
        if params.get(flag) is not None:
            queryset = queryset.filter(**{flag: params[flag]})
            logged[flag] = params[flag]
    if params.get("missing_first_contact") is not None:
        queryset = queryset.filter(first_contact__isnull=params["missing_first_contact"])
        logged["missing_first_contact"] = params["missing_first_contact"]
    return queryset.select_related("community", "grid", "first_contact"), logged


def first_contacts_list(user: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Current first contacts of the elders ``user`` may see."""
    elders = Elder.objects.visible_to(user)
    logged: dict[str, Any] = {}
    if params.get("area"):
        area = visible_area(user, params["area"])
        elders = elders.filter(**{area_column(area): area.pk})
        logged["area"] = area.code
    queryset = FirstContact.objects.filter(is_current=True, elder__in=elders.values("pk"))
    if params.get("elder") is not None:
        queryset = queryset.filter(elder_id=params["elder"])
        logged["elder"] = params["elder"]
    if params.get("designated_by_community") is not None:
        queryset = queryset.filter(designated_by_community=params["designated_by_community"])
        logged["designated_by_community"] = params["designated_by_community"]
    return queryset, logged


def areas_list(user: Any, params: dict[str, Any]) -> Any:
    queryset = Area.objects.visible_to(user).select_related("parent")
    if params.get("level"):
        queryset = queryset.filter(level=params["level"])
    if params.get("parent"):
        queryset = queryset.filter(parent=visible_area(user, params["parent"], "parent"))
    return queryset
