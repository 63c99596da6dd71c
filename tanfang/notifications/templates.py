"""The wording of messages: built-in defaults, overridden per district by ``MessageTemplate``.

Texts carry the least personal data needed: no ID number, no address, no diagnosis; the
elder is named by surname and honorific only. Placeholders are ``{name}`` fields; a
missing one is an error at the call site, never a half-filled message.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from django.db.models import Q
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from tanfang.notifications.models import MessageTemplate


@dataclass(frozen=True)
class Template:
    text: Promise
    sms_template_code: str


# code -> default wording. SMS template codes are the provider-approved templates
# (TANFANG_SMS_TEMPLATE_<CODE> may name others; docs/notifications.md lists them).
DEFAULTS: dict[str, Template] = {
    "emergency_family": Template(
        _(
            "[Tanfang] Urgent: {elder} may be in danger ({what}) at {time}. The community is "
            "responding. Please call {phone} or go now. Confirm: {link}"
        ),
        "SMS_TF_EMERGENCY_FAMILY",
    ),
    "emergency_staff": Template(
        _("[Tanfang] EMERGENCY {what}: {elder}, {community}, {time}. Open the case: {link}"),
        "SMS_TF_EMERGENCY_STAFF",
    ),
    # Family notifications (family.py): the elder by surname only, nothing else about her.
    "need_found": Template(
        _(
            "[Tanfang] At a visit on {date}, {elder} said they need: {needs}. The community "
            "will help arrange it. Reply: {link}"
        ),
        "SMS_TF_NEED_FOUND",
    ),
    "hazard_found": Template(
        _(
            "[Tanfang] A home safety check of {elder} on {date} found a hazard: {hazards}. "
            "Please help have it fixed soon. Reply: {link}"
        ),
        "SMS_TF_HAZARD_FOUND",
    ),
    "care_result": Template(
        _("[Tanfang] Follow-up for {elder} ({date}): {what}: {outcome}."),
        "SMS_TF_CARE_RESULT",
    ),
    "alert_raised": Template(
        _(
            "[Tanfang] {level}: the home sensors of {elder} showed {what} at {time}. The "
            "community has been told and is checking."
        ),
        "SMS_TF_ALERT_RAISED",
    ),
    "alert_urgent": Template(
        _(
            "[Tanfang] {level}: the home sensors of {elder} showed {what} at {time}. The "
            "community is checking; please contact your family member now. Confirm: {link}"
        ),
        "SMS_TF_ALERT_URGENT",
    ),
    "unconfirmed_escalation": Template(
        _(
            "[Tanfang] Not confirmed: the urgent message about {elder} ({community}, {what}) "
            "sent to the family at {time} was not confirmed within {minutes} minutes. Please "
            "call the family and follow up: {link}"
        ),
        "SMS_TF_UNCONFIRMED",
    ),
    # Referrals (referrals/services.py): to the staff's inbox only.
    "referral_received": Template(
        _("[Tanfang] New referral: {elder} ({community}) needs {need}. Accept by {due}: {url}"),
        "SMS_TF_REFERRAL_RECEIVED",
    ),
    "referral_overdue": Template(
        _(
            "[Tanfang] Overdue referral: {elder} ({community}) needs {need}; the step was due "
            "{due}. {url}"
        ),
        "SMS_TF_REFERRAL_OVERDUE",
    ),
}

# The placeholders each built-in template uses (the back office checks overrides with it).
PLACEHOLDERS: dict[str, frozenset[str]] = {}


def placeholders(text: str) -> frozenset[str]:
    """The ``{names}`` a text uses (``{{`` escapes excluded)."""
    return frozenset(
        name.split(".")[0].split("[")[0]
        for _lit, name, _spec, _conv in string.Formatter().parse(text)
        if name
    )


def known_placeholders(code: str) -> frozenset[str]:
    """The names a template of ``code`` may use: those of its built-in default."""
    if code not in PLACEHOLDERS and code in DEFAULTS:
        with translation.override("en"):
            PLACEHOLDERS[code] = placeholders(str(DEFAULTS[code].text))
    return PLACEHOLDERS.get(code, frozenset())


class TemplateError(ValueError):
    pass


def _override(code: str, district_id: int | None) -> MessageTemplate | None:
    rows = {
        r.area_id: r
        for r in MessageTemplate.objects.filter(
            Q(area_id=district_id) | Q(area=None), code=code, active=True
        )
    }
    return rows.get(district_id) or rows.get(None)


def render(code: str, params: dict[str, object], *, district_id: int | None) -> tuple[str, str]:
    """The text (in Chinese) and the SMS template code of ``code`` for the district."""
    row = _override(code, district_id)
    if row is not None:
        default = DEFAULTS.get(code)
        text = row.text
        sms = row.sms_template_code or (default.sms_template_code if default else "")
    elif code in DEFAULTS:
        with translation.override("zh-hans"):
            text = str(DEFAULTS[code].text)
        sms = DEFAULTS[code].sms_template_code
    else:
        raise TemplateError(f"unknown message template {code!r}")
    try:
        return text.format(**params), sms
    except (KeyError, IndexError) as exc:
        raise TemplateError(f"template {code!r} needs the parameter {exc}") from None
