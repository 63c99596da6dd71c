"""The wording of messages: built-in defaults, overridden per district by ``MessageTemplate``.

Texts carry the least personal data needed: no ID number, no address, no diagnosis; the
elder is named by surname and honorific only. Placeholders are ``{name}`` fields; a
missing one is an error at the call site, never a half-filled message.
"""

from __future__ import annotations

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
}


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
        text, sms = (
            row.text,
            row.sms_template_code or DEFAULTS.get(code, Template(_(""), "")).sms_template_code,
        )
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
