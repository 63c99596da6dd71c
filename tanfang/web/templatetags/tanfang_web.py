"""Template helpers of the pages: navigation by role, capability checks, labels."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from tanfang.accounts.roles import Capability, can
from tanfang.web import labels

register = template.Library()


def _nav_items() -> list[tuple[str, str, Capability, str]]:
    """(id, url name, capability, label) of each link, in the order the header shows them."""
    return [
        ("nav-worklist", "worklist", Capability.RECORD_VISITS, _("Worklist")),
        ("nav-emergencies", "emergency-list", Capability.VIEW_EMERGENCIES, _("Emergencies")),
        ("nav-alerts", "alert-list", Capability.VIEW_ALERTS, _("Alerts")),
        ("nav-batches", "ingest-batch-list", Capability.VIEW_INGEST_REPORTS, _("Deliveries")),
        ("nav-care", "care-list", Capability.MANAGE_CARE_ACTIONS, _("Care actions")),
        ("nav-referrals", "referral-list", Capability.VIEW_REFERRALS, _("Referrals")),
        ("nav-elders", "elder-list", Capability.VIEW_ELDERS, _("Elders")),
        ("nav-rates", "rates", Capability.VIEW_RATES, _("Visit rates")),
        ("nav-supervision", "supervision", Capability.VIEW_RATES, _("Overdue")),
        ("nav-surges", "surges", Capability.VIEW_RATES, _("Surges")),
        ("nav-teams", "teams", Capability.MANAGE_VISITORS, _("Visitors")),
        ("nav-new-elder", "elder-new", Capability.EDIT_ELDERS, _("New elder")),
        ("nav-quality", "quality", Capability.VIEW_DATA_QUALITY, _("Data quality")),
        ("nav-import", "import-elders", Capability.IMPORT_ELDERS, _("Import")),
        ("nav-audit", "audit-log", Capability.READ_AUDIT_LOG, _("Audit log")),
        ("nav-admin", "admin:index", Capability.BACK_OFFICE, _("Back office")),
    ]


@register.simple_tag(takes_context=True)
def nav_links(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The header's links for the signed-in user's role; pages not installed are skipped."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or user is None or not user.is_authenticated:
        return []
    links: list[dict[str, Any]] = []
    for link_id, name, capability, label in _nav_items():
        if not can(user, capability):
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        links.append({"id": link_id, "url": url, "label": label, "current": False})
    # The current page is the link with the longest URL the path starts with.
    matching = [link for link in links if request.path.startswith(link["url"])]
    if matching:
        max(matching, key=lambda link: len(link["url"]))["current"] = True
    return links


@register.filter
def has_capability(user: Any, capability: str) -> bool:
    """``{% if user|has_capability:"reveal_identifiers" %}``"""
    return can(user, Capability(capability))


@register.filter
def category_label(code: str) -> str:
    return labels.category_label(code)


@register.filter
def field_label(name: str) -> str:
    return labels.field_label(name)


@register.filter
def source_label(source: str) -> str:
    return labels.source_label(source)


@register.filter
def yes_no(value: bool | None) -> str:
    if value is None:
        return _("Unknown")
    return _("Yes") if value else _("No")


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def audit_details(details: dict[str, Any] | None) -> str:
    """An audit entry's details in a short line: the filters, the field, the row count."""
    if not details:
        return ""
    parts = []
    if "field" in details:
        parts.append(labels.field_label(str(details["field"])))
    filters = details.get("filters")
    if isinstance(filters, dict) and filters:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(filters.items()))
        parts.append(_("filters: %(filters)s") % {"filters": shown})
    if "problem" in details:
        parts.append(
            _("problem: %(problem)s") % {"problem": labels.problem_label(str(details["problem"]))}
        )
    if "shown" in details:
        parts.append(_("shown: %(n)s") % {"n": details["shown"]})
    if "rows" in details:
        parts.append(_("rows: %(n)s") % {"n": details["rows"]})
    if "category" in details:
        parts.append(labels.category_label(str(details["category"])))
    if details.get("changed"):
        parts.append(", ".join(labels.field_label(str(f)) for f in details["changed"]))
    return "; ".join(parts)
