"""Data partners: registering one and issuing the token its systems push readings with.

The token is shown once, when issued; only its SHA-256 is stored (``token_hash``) with its
first characters (``token_prefix``) so an operator can tell tokens apart. Issuing a new
token replaces the old one at once.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from tanfang.accounts.models import Role, User
from tanfang.monitoring.files import format_from_mapping
from tanfang.monitoring.models import DataPartner, PartnerKind

TOKEN_BYTES = 32


class PartnerError(ValueError):
    """A partner change that is not allowed; the message is for the user."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def partner_create(
    *,
    code: str,
    name: str,
    kind: str,
    contact: User | None = None,
    column_mapping: dict[str, Any] | None = None,
) -> DataPartner:
    if DataPartner.objects.filter(code=code).exists():
        raise PartnerError(_("A partner with the code %(code)s exists already.") % {"code": code})
    if kind not in PartnerKind.values:
        raise PartnerError(_("Unknown kind of partner: %(kind)s.") % {"kind": kind})
    for entry in (column_mapping or {}).values():
        format_from_mapping(entry)
    _check_contact(contact)
    return DataPartner.objects.create(
        code=code, name=name, kind=kind, contact=contact, column_mapping=column_mapping or {}
    )


def partner_token_issue(*, partner: DataPartner) -> str:
    """A new token for ``partner`` (returned once; the previous one stops working).

    A partner's pushes act in the place of its contact person (``api/views_ingest.py``): a
    partner without an active contact with the data partner role gets no token, as a user
    without a role and an area gets none (``tanfang token``)."""
    _check_contact(partner.contact, required=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with transaction.atomic():
        updated = DataPartner.objects.filter(pk=partner.pk).update(
            token_hash=token_hash(token), token_prefix=token[:8]
        )
    if not updated:
        raise PartnerError(_("No such partner."))
    partner.token_hash, partner.token_prefix = token_hash(token), token[:8]
    return token


def partner_token_revoke(*, partner: DataPartner) -> None:
    DataPartner.objects.filter(pk=partner.pk).update(token_hash="", token_prefix="")
    partner.token_hash = partner.token_prefix = ""


def partner_for_token(token: str) -> DataPartner | None:
    """The active partner whose token this is."""
    if not token:
        return None
    return (
        DataPartner.objects.select_related("contact")
        .filter(token_hash=token_hash(token), active=True)
        .exclude(token_hash="")
        .first()
    )


def _check_contact(contact: User | None, *, required: bool = False) -> None:
    if contact is None:
        if required:
            raise PartnerError(
                _(
                    "The partner has no contact person: a token would open nothing. Set a "
                    "contact (a user with the data partner role) first."
                )
            )
        return
    if contact.role != Role.DATA_PARTNER or not contact.is_active or contact.area_id is None:
        raise PartnerError(
            _(
                "The contact %(username)s must be an active user with the data partner role "
                "and an area."
            )
            % {"username": contact.username}
        )
