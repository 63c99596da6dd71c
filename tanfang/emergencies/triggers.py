"""Hooks other apps call, inside their own transactions, when life may be in danger.

- ``after_device_alarm``: an SOS or fall alarm was just raised (``monitoring.alerts``);
- ``after_alert_escalated``: a critical person alert (inactivity, missed routine) reached
  the community level with nobody acknowledging it;
- ``after_visit``: a visit recorded the "emergency rescue" need;
- ``visitor_report``: a worker pressed "Report an emergency" on the elder page or worklist.

Each opens the elder's case, or joins the one already open (``services.emergency_open``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils.translation import gettext as _

from tanfang.emergencies.models import EmergencyCase, Trigger
from tanfang.emergencies.services import emergency_open

DEVICE_TRIGGERS = {"sos": Trigger.SOS, "fall": Trigger.FALL}
PERSON_ALERT_KINDS = {"inactivity", "missed_routine"}


def after_device_alarm(
    alert: Any, *, kind: str, created: bool, now: dt.datetime
) -> EmergencyCase | None:
    """An SOS or fall alarm opens (or joins) the elder's case, with the alert linked."""
    trigger = DEVICE_TRIGGERS.get(kind)
    if trigger is None or alert is None or not created or alert.elder is None:
        return None
    device = getattr(alert, "device", None)
    summary = _("Device %(device)s") % {"device": device.device_id} if device else ""
    case, _created = emergency_open(
        elder=alert.elder, trigger=trigger, summary=summary, alert=alert, now=now
    )
    return case


def after_alert_escalated(alert: Any, *, now: dt.datetime) -> EmergencyCase | None:
    """A critical inactivity or missed-routine alert climbed to the community unanswered."""
    if (
        alert.elder is None
        or alert.kind not in PERSON_ALERT_KINDS
        or alert.severity != "critical"
        # The community level, or above it when nobody holds the community's post.
        or alert.level not in ("community", "subdistrict")
        or alert.state != "open"
    ):
        return None
    case, _created = emergency_open(
        elder=alert.elder,
        trigger=Trigger.INACTIVITY,
        summary=_("Alert not acknowledged: %(rule)s") % {"rule": alert.rule},
        alert=alert,
        now=now,
    )
    return case


def after_visit(*, actor: Any, visit: Any) -> EmergencyCase | None:
    """A visit that records the "emergency rescue" need opens the elder's case."""
    from tanfang.visits.record_form import needs

    if "emergency_rescue" not in needs(visit.sections or {}):
        return None
    case, _created = emergency_open(
        elder=visit.elder,
        trigger=Trigger.VISITOR_REPORT,
        summary=(visit.notes or _("Emergency rescue needed (visit record)"))[:300],
        visit=visit,
        actor=actor,
    )
    return case


def visitor_report(*, actor: Any, elder: Any, description: str) -> tuple[EmergencyCase, bool]:
    """A worker reports an emergency from the elder page or the worklist."""
    return emergency_open(
        elder=elder,
        trigger=Trigger.VISITOR_REPORT,
        summary=description.strip()[:300],
        actor=actor,
    )
