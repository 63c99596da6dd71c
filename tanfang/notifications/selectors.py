"""Reading notifications with the acting user's scope: her inbox, an elder's notifications,
the contact list. Pages call these; nothing here writes."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db.models import F, QuerySet

from tanfang.notifications.models import Channel, FamilyContact, Message, Notification
from tanfang.registry.models import Elder, FirstContact


def inbox_of(user: Any) -> QuerySet[Message]:
    """The user's own inbox messages: unread first, newest first."""
    if not getattr(user, "is_authenticated", False):
        return Message.objects.none()
    return (
        Message.objects.filter(channel=Channel.INBOX, notification__user_id=user.pk)
        .select_related("notification")
        .order_by(F("read_at").desc(nulls_first=True), "-created_at", "-id")
    )


# The header's badge is read from the cache for this long (the inbox page itself is always
# counted afresh, and marking read forgets the cached count): a page costs no query for it.
BADGE_SECONDS = 30


def _badge_key(user: Any) -> str:
    joined = getattr(user, "date_joined", None)
    stamp = int(joined.timestamp() * 1_000_000) if joined is not None else 0
    return f"tanfang:inbox-unread:{user.pk}:{stamp}"


def inbox_unread_count(user: Any, *, fresh: bool = False) -> int:
    """How many of the user's inbox messages are unread: the nav badge. Cached for
    ``BADGE_SECONDS`` unless ``fresh`` (one indexed count when it is computed)."""
    if not getattr(user, "is_authenticated", False):
        return 0
    key = _badge_key(user)
    if not fresh:
        cached = cache.get(key)
        if cached is not None:
            return int(cached)
    count = Message.objects.filter(
        channel=Channel.INBOX, notification__user_id=user.pk, read_at__isnull=True
    ).count()
    cache.set(key, count, BADGE_SECONDS)
    return count


def inbox_forget(user: Any) -> None:
    """Drop the cached badge count (after marking messages read)."""
    if getattr(user, "is_authenticated", False):
        cache.delete(_badge_key(user))


def notifications_visible_to(user: Any) -> QuerySet[Notification]:
    """Notifications about elders the user may see (the tree's scope), and her own."""
    elders = Elder.objects.visible_to(user).values("pk")
    return Notification.objects.filter(elder_id__in=elders)


def elder_notifications(*, user: Any, elder: Elder, limit: int = 50) -> list[Notification]:
    """Who was told what about the elder, when, and whether it arrived or was confirmed."""
    return list(
        notifications_visible_to(user)
        .filter(elder_id=elder.pk)
        .prefetch_related("messages")
        .order_by("-created_at", "-id")[:limit]
    )


def contact_list(elder: Elder) -> tuple[FirstContact | None, list[FamilyContact]]:
    """The elder's current first contact and her family contacts (active first)."""
    # The elder's page loads ``first_contact`` with the elder (no query here).
    first = elder.first_contact
    if first is not None and not first.is_current:
        first = FirstContact.objects.filter(elder_id=elder.pk, is_current=True).first()
    family = FamilyContact.objects.filter(elder_id=elder.pk).order_by("-active", "position", "id")
    return first, list(family)
