"""Plain rules of notifications: a district's settings and its quiet hours."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.db.models import Q

from tanfang.notifications.models import NotificationRules

LOCAL = ZoneInfo("Asia/Shanghai")


def notification_rules(district_id: int | None) -> NotificationRules:
    """The district's row, else the city's default row, else the built-in defaults."""
    found = NotificationRules.objects.filter(Q(area_id=district_id) | Q(area=None))
    rows = {r.area_id: r for r in found}
    return rows.get(district_id) or rows.get(None) or NotificationRules()


def _as_time(value: dt.time | str) -> dt.time:
    return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))


def quiet_until(now: dt.datetime, rules: NotificationRules) -> dt.datetime | None:
    """When ``now`` (aware) falls in the quiet hours (local time, possibly across midnight),
    the moment they end; else None. Start equal to end means no quiet hours."""
    start, end = _as_time(rules.quiet_start), _as_time(rules.quiet_end)
    if start == end:
        return None
    local = now.astimezone(LOCAL)
    t = local.time()
    if start < end:
        inside = start <= t < end
        ends_on = local.date()
    else:
        inside = t >= start or t < end
        ends_on = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return dt.datetime.combine(ends_on, end, tzinfo=LOCAL)
