"""Words for referral codes: needs, states, sources, history events, route reasons."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from tanfang.referrals.models import ReferralSource, ReferralState
from tanfang.referrals.rules import ALERT_HELP, EXTREMELY_POOR

EVENT_LABELS: dict[str, Promise] = {
    "received": _("Received"),
    "accepted": _("Accepted"),
    "matched": _("Matched to a service"),
    "done": _("Done"),
    "declined": _("Declined"),
    "escalated": _("Escalated to the district"),
}
# Where a referral comes from (a context of its own: "Visit" alone is taken elsewhere).
SOURCE_LABELS: dict[str, Promise] = {
    ReferralSource.VISIT: pgettext_lazy("referral source", "Visit"),
    ReferralSource.ALERT: pgettext_lazy("referral source", "Monitoring alert"),
    ReferralSource.EMERGENCY: pgettext_lazy("referral source", "Emergency"),
    ReferralSource.MANUAL: pgettext_lazy("referral source", "Entered by a worker"),
}
EXTRA_NEEDS: dict[str, Promise] = {
    ALERT_HELP: _("Help after a monitoring alert"),
}


def need_label(code: str) -> str:
    """A need of the visit record form, or a need a referral adds (help after an alert)."""
    from tanfang.visits.record_form import NEEDS

    if code in EXTRA_NEEDS:
        return str(EXTRA_NEEDS[code])
    for value, label in NEEDS:
        if value == code:
            return str(label)
    return code


def state_label(code: str) -> str:
    try:
        return str(ReferralState(code).label)
    except ValueError:
        return code


def source_label(code: str) -> str:
    label = SOURCE_LABELS.get(code)
    return str(label) if label is not None else code


def event_label(code: str) -> str:
    return str(EVENT_LABELS.get(code, code))


def reason_label(code: str) -> str:
    """Why the elder's needs are referred: extremely poor, or one of her categories."""
    if code == EXTREMELY_POOR:
        return str(_("Extremely poor"))
    from tanfang.web.labels import category_label

    return str(category_label(code))
