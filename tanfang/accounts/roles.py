"""What each role may do. The scope (which elders) is in ``scope.py``; this is the *what*.

Capabilities are plain sets so that a page, an API endpoint and an admin view ask the same
question in the same words: ``can(user, Capability.REVEAL_IDENTIFIERS)``.
"""

from __future__ import annotations

from enum import StrEnum

from tanfang.accounts.models import Role


class Capability(StrEnum):
    VIEW_ELDERS = "view_elders"
    EDIT_ELDERS = "edit_elders"
    REVEAL_IDENTIFIERS = "reveal_identifiers"
    OVERRIDE_CATEGORY = "override_category"
    IMPORT_ELDERS = "import_elders"
    EXPORT_ELDERS = "export_elders"
    VIEW_DATA_QUALITY = "view_data_quality"
    VIEW_AREAS = "view_areas"
    MANAGE_AREAS = "manage_areas"
    READ_AUDIT_LOG = "read_audit_log"
    BACK_OFFICE = "back_office"
    RECORD_VISITS = "record_visits"
    VIEW_VISITS = "view_visits"
    MANAGE_VISITORS = "manage_visitors"
    MANAGE_CARE_ACTIONS = "manage_care_actions"
    VIEW_RATES = "view_rates"
    DECLARE_SURGE = "declare_surge"
    VIEW_ALERTS = "view_alerts"
    HANDLE_ALERTS = "handle_alerts"
    MANAGE_MONITORING = "manage_monitoring"
    # The data partners' delivery reports (batches and the readings set aside): meters and
    # counts, never an elder. A partner's user sees her partner's; the others every partner's.
    VIEW_INGEST_REPORTS = "view_ingest_reports"
    # Emergencies (issue 5): the cases of one's scope with their call list and timeline;
    # logging calls, confirming a case is being handled, closing it.
    VIEW_EMERGENCIES = "view_emergencies"
    HANDLE_EMERGENCIES = "handle_emergencies"
    # Referrals of needs to the subdistrict (docs/referrals.md): its staff handle them; the
    # district and the city oversee them; a community worker follows her community's.
    VIEW_REFERRALS = "view_referrals"
    HANDLE_REFERRALS = "handle_referrals"


_WORKERS = {
    Capability.VIEW_ELDERS,
    Capability.EDIT_ELDERS,
    Capability.REVEAL_IDENTIFIERS,
    Capability.OVERRIDE_CATEGORY,
    Capability.IMPORT_ELDERS,
    Capability.EXPORT_ELDERS,
    Capability.VIEW_DATA_QUALITY,
    Capability.VIEW_AREAS,
    Capability.RECORD_VISITS,
    Capability.VIEW_VISITS,
    Capability.MANAGE_VISITORS,
    Capability.MANAGE_CARE_ACTIONS,
    Capability.VIEW_RATES,
    Capability.VIEW_ALERTS,
    Capability.HANDLE_ALERTS,
    Capability.VIEW_EMERGENCIES,
    Capability.HANDLE_EMERGENCIES,
}

ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.CITY_ADMIN: frozenset(
        _WORKERS
        | {
            Capability.MANAGE_AREAS,
            Capability.BACK_OFFICE,
            Capability.DECLARE_SURGE,
            Capability.MANAGE_MONITORING,
            Capability.VIEW_INGEST_REPORTS,
            Capability.VIEW_REFERRALS,
        }
    ),
    Role.DISTRICT_SUPERVISOR: frozenset(
        {
            Capability.VIEW_ELDERS,
            Capability.REVEAL_IDENTIFIERS,
            Capability.EXPORT_ELDERS,
            Capability.VIEW_DATA_QUALITY,
            Capability.VIEW_AREAS,
            Capability.BACK_OFFICE,
            Capability.VIEW_VISITS,
            Capability.VIEW_RATES,
            Capability.DECLARE_SURGE,
            # Oversees the district's alerts and their outcomes, and tunes its detection
            # rules; the alerts themselves are handled by the levels below.
            Capability.VIEW_ALERTS,
            Capability.MANAGE_MONITORING,
            Capability.VIEW_INGEST_REPORTS,
            Capability.VIEW_REFERRALS,
            # An emergency nobody confirmed climbs to the district: she confirms and closes.
            Capability.VIEW_EMERGENCIES,
            Capability.HANDLE_EMERGENCIES,
        }
    ),
    # The last step of an alert's escalation; links meters and devices to the elders of the
    # subdistrict in the back office.
    Role.SUBDISTRICT_STAFF: frozenset(
        _WORKERS
        | {
            Capability.BACK_OFFICE,
            Capability.DECLARE_SURGE,
            Capability.MANAGE_MONITORING,
            Capability.VIEW_INGEST_REPORTS,
            Capability.VIEW_REFERRALS,
            Capability.HANDLE_REFERRALS,
        }
    ),
    Role.COMMUNITY_WORKER: frozenset(_WORKERS | {Capability.VIEW_REFERRALS}),
    # A visitor sees her assigned elders (and those of a visitor she stands in for), may reveal
    # a phone number to call them, records visits and works on the care actions she owns.
    Role.VISITOR: frozenset(
        {
            Capability.VIEW_ELDERS,
            Capability.REVEAL_IDENTIFIERS,
            Capability.RECORD_VISITS,
            Capability.VIEW_VISITS,
            Capability.MANAGE_CARE_ACTIONS,
            Capability.VIEW_ALERTS,
            Capability.HANDLE_ALERTS,
            Capability.VIEW_EMERGENCIES,
            Capability.HANDLE_EMERGENCIES,
        }
    ),
    # A utility or device vendor: the technical alerts of its own meters (a meter that stopped
    # reporting) and the reports of its deliveries, never an elder's personal data.
    Role.DATA_PARTNER: frozenset(
        {
            Capability.VIEW_AREAS,
            Capability.VIEW_ALERTS,
            Capability.HANDLE_ALERTS,
            Capability.VIEW_INGEST_REPORTS,
        }
    ),
    Role.AUDITOR: frozenset({Capability.READ_AUDIT_LOG}),
}


def can(user: object, capability: Capability) -> bool:
    """Whether ``user`` (signed in, with a role and an area) has ``capability``."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    role = getattr(user, "role", "")
    if getattr(user, "area_id", None) is None:
        return False
    return capability in ROLE_CAPABILITIES.get(role, frozenset())
