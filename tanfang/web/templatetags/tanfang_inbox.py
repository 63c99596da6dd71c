"""The inbox badge of the header, for signed-in workers: a cached count (see
``notifications.selectors.inbox_unread_count``), so a page costs no query for it."""

from __future__ import annotations

from typing import Any

from django import template

from tanfang.accounts.roles import Capability, can

register = template.Library()


@register.simple_tag(takes_context=True)
def inbox_unread(context: dict[str, Any]) -> int | None:
    """The user's unread inbox messages; None when she has no inbox (no badge, no link)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not can(user, Capability.VIEW_ELDERS):
        return None
    from tanfang.notifications.selectors import inbox_unread_count

    return inbox_unread_count(user)
