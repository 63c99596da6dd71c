"""Who is told: the elder's contact list, a worker, a WeCom group, and who is on duty.

The contact list is the current first contact (``registry.FirstContact``) followed by the
active ``FamilyContact`` rows in order. Addresses carry the ENCRYPTED phone or e-mail copied
from the contact's row (``Address.cipher``) and its masked form; nothing is decrypted here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from tanfang.accounts.models import User
from tanfang.core.crypto import encrypt
from tanfang.notifications.models import Channel, FamilyContact, RecipientKind, WeComGroup
from tanfang.notifications.services import Address, Recipient
from tanfang.registry.identity import IdentifierError, mask_phone, normalise_phone
from tanfang.registry.models import FirstContact

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def mask_email(address: str) -> str:
    """``z***@example.com``: the first character of the name and the domain."""
    name, _at, domain = address.partition("@")
    if not domain:
        return "***"
    return f"{name[:1]}***@{domain}"


def is_email(value: str) -> bool:
    return bool(_EMAIL_RE.match(value or "")) and len(value) <= 254


def first_contact_recipient(elder: Any) -> Recipient | None:
    """The elder's current first contact, reachable by SMS; None when there is none."""
    if getattr(elder, "first_contact_id", 0) is None:
        return None  # the elder's row says there is none: no query
    contact = (
        FirstContact.objects.filter(elder_id=elder.pk, is_current=True).order_by("-id").first()
    )
    if contact is None or not contact.phone_cipher:
        return None
    return Recipient(
        kind=RecipientKind.FIRST_CONTACT,
        ref=f"first_contact:{contact.pk}",
        name=contact.name,
        addresses=(Address(Channel.SMS, contact.phone_cipher, contact.phone_masked),),
        first_contact_id=contact.pk,
    )


def family_contact_recipient(contact: FamilyContact) -> Recipient | None:
    addresses = []
    if contact.phone_cipher:
        addresses.append(Address(Channel.SMS, contact.phone_cipher, contact.phone_masked))
    if contact.email_cipher:
        addresses.append(Address(Channel.EMAIL, contact.email_cipher, contact.email_masked))
    if not addresses:
        return None
    return Recipient(
        kind=RecipientKind.FAMILY,
        ref=f"family:{contact.pk}",
        name=contact.name,
        addresses=tuple(addresses),
        family_contact_id=contact.pk,
    )


def family_recipients(elder: Any) -> list[Recipient]:
    """The whole contact list in order: the first contact (SMS), then each active family
    contact (SMS, and e-mail when known)."""
    found: list[Recipient] = []
    first = first_contact_recipient(elder)
    if first is not None:
        found.append(first)
    for contact in FamilyContact.objects.filter(elder_id=elder.pk, active=True):
        recipient = family_contact_recipient(contact)
        if recipient is not None:
            found.append(recipient)
    return found


def staff_recipient(
    user: User | None, channels: Sequence[str] = (Channel.INBOX, Channel.SMS)
) -> Recipient | None:
    """A worker: the in-app inbox, SMS when her phone is recorded, e-mail when her address
    is, in the order of ``channels``. None for no user."""
    if user is None:
        return None
    addresses: list[Address] = []
    for channel in channels:
        if channel == Channel.INBOX:
            addresses.append(Address(Channel.INBOX))
        elif channel == Channel.SMS and user.phone:
            try:
                phone = normalise_phone(user.phone)
            except IdentifierError:
                continue
            addresses.append(Address(Channel.SMS, encrypt(phone), mask_phone(phone)))
        elif channel == Channel.EMAIL and is_email(user.email):
            addresses.append(Address(Channel.EMAIL, encrypt(user.email), mask_email(user.email)))
    return Recipient(
        kind=RecipientKind.USER,
        ref=f"user:{user.pk}",
        name=(user.get_full_name() or user.username)[:80],
        addresses=tuple(addresses),
        user_id=user.pk,
    )


def group_recipients(area_ids: Iterable[int | None]) -> list[Recipient]:
    """The active WeCom groups of the given areas (a community, its subdistrict ...)."""
    ids = [a for a in area_ids if a is not None]
    if not ids:
        return []
    return [
        Recipient(
            kind=RecipientKind.GROUP,
            ref=f"group:{group.pk}",
            name=group.name,
            addresses=(Address(Channel.WECOM, group.key_cipher, group.name[:120]),),
            group_id=group.pk,
        )
        for group in WeComGroup.objects.filter(area_id__in=ids, active=True).order_by("id")
    ]


def on_duty(role: str, area_id: int | None) -> User | None:
    """The worker of ``role`` on duty for the area: the longest-serving active account of
    that role placed there (the one place this is decided; monitoring and care ask here)."""
    if area_id is None:
        return None
    return User.objects.filter(role=role, area_id=area_id, is_active=True).order_by("id").first()
