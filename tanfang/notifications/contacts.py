"""The elder's contact list after the first contact: add, change and deactivate family
contacts. Phones and e-mail addresses are validated, stored encrypted, shown masked; every
change is audited (never with the number itself)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from tanfang.accounts.roles import Capability, can
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.core import crypto
from tanfang.notifications.models import FamilyContact
from tanfang.notifications.recipients import is_email, mask_email
from tanfang.registry.errors import AccessDenied
from tanfang.registry.identity import IdentifierError, mask_phone, normalise_phone
from tanfang.registry.models import ContactRelation, Elder


class ContactError(ValueError):
    """A family contact that cannot be saved, with a message for the user."""


def _check_actor(actor: Any, elder: Elder) -> None:
    """A person (not the system) must be allowed to edit the elder and see her."""
    if actor is None:
        return
    if not can(actor, Capability.EDIT_ELDERS):
        raise AccessDenied
    if not Elder.objects.visible_to(actor).filter(pk=elder.pk).exists():
        raise AccessDenied


def _phone(raw: str) -> tuple[str, str]:
    if not raw.strip():
        return "", ""
    try:
        number = normalise_phone(raw)
    except IdentifierError as exc:
        raise ContactError(str(exc)) from None
    return crypto.encrypt(number), mask_phone(number)


def _email(raw: str) -> tuple[str, str]:
    value = raw.strip()
    if not value:
        return "", ""
    if not is_email(value):
        raise ContactError(_("This is not an e-mail address."))
    return crypto.encrypt(value), mask_email(value)


def _clean_name_relation(name: str, relation: str) -> tuple[str, str]:
    if not name.strip():
        raise ContactError(_("A family contact needs a name."))
    if relation not in ContactRelation.values:
        raise ContactError(_("unknown relation: %(relation)s") % {"relation": relation})
    return name.strip()[:64], relation


def family_contact_add(
    *,
    actor: Any,
    elder: Elder,
    name: str,
    relation: str,
    phone: str = "",
    email: str = "",
    position: int | None = None,
) -> FamilyContact:
    """Add someone to the elder's contact list (after the first contact). A phone number or
    an e-mail address is required: a contact nobody can reach is no contact."""
    _check_actor(actor, elder)
    name, relation = _clean_name_relation(name, relation)
    phone_cipher, phone_masked = _phone(phone)
    email_cipher, email_masked = _email(email)
    if not phone_cipher and not email_cipher:
        raise ContactError(_("Give a phone number or an e-mail address."))
    with transaction.atomic():
        if position is None:
            last = FamilyContact.objects.filter(elder=elder).aggregate(m=Max("position"))["m"]
            position = (last or 0) + 1
        contact = FamilyContact.objects.create(
            elder=elder,
            name=name,
            relation=relation,
            phone_cipher=phone_cipher,
            phone_masked=phone_masked,
            email_cipher=email_cipher,
            email_masked=email_masked,
            position=position,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            elder=elder,
            details={"family_contact": contact.pk, "change": "added", "relation": relation},
        )
    return contact


def family_contact_update(
    *,
    actor: Any,
    contact: FamilyContact,
    name: str | None = None,
    relation: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    position: int | None = None,
) -> FamilyContact:
    """Change a family contact; ``None`` leaves a field as it is, ``""`` clears phone or
    e-mail (one of them must remain)."""
    elder = contact.elder
    _check_actor(actor, elder)
    changed: list[str] = []
    if name is not None or relation is not None:
        contact.name, contact.relation = _clean_name_relation(
            contact.name if name is None else name,
            contact.relation if relation is None else relation,
        )
        changed += ["name", "relation"]
    if phone is not None:
        contact.phone_cipher, contact.phone_masked = _phone(phone)
        changed += ["phone_cipher", "phone_masked"]
    if email is not None:
        contact.email_cipher, contact.email_masked = _email(email)
        changed += ["email_cipher", "email_masked"]
    if position is not None:
        contact.position = position
        changed.append("position")
    if not contact.phone_cipher and not contact.email_cipher:
        raise ContactError(_("Give a phone number or an e-mail address."))
    if not changed:
        return contact
    with transaction.atomic():
        contact.save(update_fields=changed)
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            elder=elder,
            details={
                "family_contact": contact.pk,
                "change": "changed",
                "fields": sorted({f.split("_")[0] for f in changed}),
            },
        )
    return contact


def family_contact_deactivate(*, actor: Any, contact: FamilyContact) -> FamilyContact:
    """Take a family contact off the list (kept, for the history of who was told)."""
    elder = contact.elder
    _check_actor(actor, elder)
    if not contact.active:
        return contact
    with transaction.atomic():
        contact.active = False
        contact.save(update_fields=["active"])
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            elder=elder,
            details={"family_contact": contact.pk, "change": "deactivated"},
        )
    return contact
