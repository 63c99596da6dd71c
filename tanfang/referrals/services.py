"""Every change of a referral: open it, move it one step on, escalate the overdue ones.

- ``referral_open`` is idempotent on the key (a visit corrected, an alert closed twice, two
  workers at once: one referral); it tells the receiving subdistrict's staff in their inbox.
- ``referral_move`` takes one step (``rules.TRANSITIONS``) for a user who handles referrals
  and sees this one; each open step gets its time limit from the district's ``ReferralRules``.
  Matching and finishing also move the linked care action (connected, served), so the visitor
  who found the need sees it answered.
- ``referrals_escalate`` claims each overdue open referral with a conditional UPDATE, so it
  escalates once (``escalated_at``), with an event row and a message to the district
  supervisors' inbox. Messages are outbox rows written in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.models import Role, User
from tanfang.accounts.roles import Capability, can
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.care.models import ServiceEntry
from tanfang.referrals import rules
from tanfang.referrals.models import Referral, ReferralEvent, ReferralRules, ReferralState
from tanfang.registry.models import Elder


class ReferralError(Exception):
    """A change of a referral that is not allowed, with a message for the user."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def rules_for(district_id: int | None) -> ReferralRules:
    """The district's row, else the city's default row, else the built-in defaults."""
    found = ReferralRules.objects.filter(Q(area_id=district_id) | Q(area=None))
    rows = {r.area_id: r for r in found}
    return rows.get(district_id) or rows.get(None) or ReferralRules()


def limits_of(row: ReferralRules) -> rules.TimeLimits:
    return rules.TimeLimits(row.accept_hours, row.match_days, row.done_days)


def route_for(elder: Elder, row: ReferralRules | None = None) -> rules.Route:
    """Where the elder's needs go, with her district's extra categories."""
    row = row or rules_for(elder.district_id)
    return rules.route_of(
        extremely_poor=elder.extremely_poor,
        categories=elder.categories or (),
        extra_categories=row.extra_categories or (),
    )


def services_for(referral: Referral) -> list[ServiceEntry]:
    """The directory's active services where the elder lives (her community or any area above
    it), those serving the referral's need first."""
    elder = referral.elder
    areas = [elder.community_id, elder.subdistrict_id, elder.district_id, elder.city_id]
    entries = list(
        ServiceEntry.objects.filter(active=True, area_id__in=areas).order_by("name", "id")
    )
    return sorted(entries, key=lambda e: referral.need not in (e.needs or ()))


def _link(referral: Referral) -> str:
    base = getattr(settings, "TANFANG_PUBLIC_URL", "") or "http://127.0.0.1:8000"
    return base.rstrip("/") + reverse("referral-detail", args=[referral.pk])


def _elder_short(elder: Elder) -> str:
    """Surname and honorific only: the least a message needs to say who."""
    surname = (elder.name or "")[:1]
    return surname + ("奶奶" if elder.gender == "female" else "爷爷")


def _inbox(users: list[User]) -> list[Any]:
    from tanfang.notifications.services import Address, Recipient

    return [
        Recipient(
            kind="user",
            ref=f"user:{u.pk}",
            name=u.get_full_name() or u.username,
            addresses=(Address("inbox"),),
            user_id=u.pk,
        )
        for u in users
    ]


def _staff(role: str, area_id: int) -> list[User]:
    return list(User.objects.filter(role=role, area_id=area_id, is_active=True).order_by("id"))


def _tell(referral: Referral, *, what: str, template: str, users: list[User], now: Any) -> None:
    from tanfang.notifications.models import Topic
    from tanfang.notifications.services import notify
    from tanfang.referrals.labels import need_label

    if not users:
        return
    notify(
        key=f"referral:{referral.pk}:{what}",
        topic=Topic.REFERRAL,
        template=template,
        params={
            "elder": _elder_short(referral.elder),
            "need": str(need_label(referral.need)),
            "community": referral.community.name,
            "due": timezone.localtime(referral.due_at).strftime("%m-%d %H:%M"),
            "url": _link(referral),
        },
        recipients=_inbox(users),
        elder=referral.elder,
        cause=("referral", referral.pk),
        now=now,
    )


def referral_open(
    *,
    key: str,
    elder: Elder,
    need: str,
    route_reason: str,
    source: str,
    detail: str = "",
    actor: Any = None,
    visit: Any = None,
    alert: Any = None,
    care_action: Any = None,
    now: dt.datetime | None = None,
) -> tuple[Referral, bool]:
    """Refer one need of ``elder`` to her subdistrict; ``(referral, created)``. Opening the same
    key again returns the first referral and writes nothing."""
    existing = Referral.objects.filter(key=key).first()
    if existing is not None:
        return existing, False
    now = now or timezone.now()
    limits = limits_of(rules_for(elder.district_id))
    due = rules.due_after(rules.Step.RECEIVED, now, limits)
    assert due is not None
    by = actor if getattr(actor, "pk", None) else None
    try:
        with transaction.atomic():
            referral = Referral.objects.create(
                key=key[:120],
                elder=elder,
                subdistrict_id=elder.subdistrict_id,
                district_id=elder.district_id,
                community_id=elder.community_id,
                need=need[:40],
                detail=detail[:300],
                route_reason=route_reason[:40],
                source=source,
                visit=visit,
                alert=alert,
                care_action=care_action,
                state=ReferralState.RECEIVED,
                due_at=due,
                created_by=by,
                created_at=now,
            )
            ReferralEvent.objects.create(
                referral=referral,
                at=now,
                by=by,
                event="received",
                to_state=ReferralState.RECEIVED,
            )
            _tell(
                referral,
                what="received",
                template="referral_received",
                users=_staff(Role.SUBDISTRICT_STAFF, elder.subdistrict_id),
                now=now,
            )
    except IntegrityError:
        # Opened by someone else at the same moment: theirs is the referral.
        return Referral.objects.get(key=key[:120]), False
    return referral, True


_PROBLEMS = {
    "not_possible": lambda: _("This step is not possible from the referral's current state."),
    "reason": lambda: _("Say why the referral is declined."),
    "service": lambda: _("Choose the service the need is matched to."),
    "result": lambda: _("Say what was done."),
}


def _may_handle(referral: Referral, actor: Any) -> None:
    from tanfang.referrals.selectors import referrals_visible_to

    if (
        not can(actor, Capability.HANDLE_REFERRALS)
        or not referrals_visible_to(actor).filter(pk=referral.pk).exists()
    ):
        raise ReferralError(_("You cannot act on this referral."), "forbidden")


def referral_move(
    actor: Any,
    referral: Referral,
    to: str,
    *,
    service: ServiceEntry | None = None,
    reason: str = "",
    result: str = "",
    request: Any = None,
    now: dt.datetime | None = None,
) -> Referral:
    """Take one step: accept, match to a service of the elder's area, done with a result, or
    decline with a reason. The new open step gets its time limit; a closing step closes."""
    _may_handle(referral, actor)
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            Referral.objects.select_for_update(of=("self",))
            .select_related("elder")
            .get(pk=referral.pk)
        )
        problem = rules.step_problem(
            state=locked.state,
            to=to,
            reason=reason,
            result=result,
            has_service=service is not None,
        )
        if problem:
            raise ReferralError(_PROBLEMS[problem](), problem)
        if (
            service is not None
            and to == rules.Step.MATCHED
            and service.pk not in {s.pk for s in services_for(locked)}
        ):
            raise ReferralError(_("This service does not serve the elder's area."), "service")
        before = locked.state
        locked.state = to
        fields = ["state"]
        if to == rules.Step.ACCEPTED or locked.handled_by_id is None:
            locked.handled_by = actor
            fields.append("handled_by")
        if to == rules.Step.MATCHED:
            locked.service = service
            fields.append("service")
        if to == rules.Step.DECLINED:
            locked.decline_reason = reason.strip()[:300]
            fields.append("decline_reason")
        if to == rules.Step.DONE:
            locked.result = result.strip()[:300]
            fields.append("result")
        due = rules.due_after(to, now, limits_of(rules_for(locked.district_id)))
        if due is not None:
            locked.due_at = due
            fields.append("due_at")
        if rules.is_closed(to):
            locked.closed = True
            locked.closed_at = now
            fields += ["closed", "closed_at"]
        locked.save(update_fields=fields)
        note = {"declined": reason, "done": result}.get(to, "") or (
            service.name if service is not None else ""
        )
        ReferralEvent.objects.create(
            referral=locked,
            at=now,
            by=actor,
            event=to,
            from_state=before,
            to_state=to,
            note=note.strip()[:300],
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            elder=locked.elder,
            reason=f"referral {to}",
            details={"referral": locked.pk, "from": before, "to": to},
            request=request,
        )
        _care_follow(actor, locked, to)
    return locked


def _care_follow(actor: Any, referral: Referral, to: str) -> None:
    """Matching connects the linked care action to the service, done serves it."""
    from tanfang.care.models import CareAction
    from tanfang.care.rules import CareState, can_move
    from tanfang.care.services import care_action_move

    if referral.care_action_id is None:
        return
    wanted = {rules.Step.MATCHED: CareState.CONNECTED, rules.Step.DONE: CareState.SERVED}.get(
        rules.Step(to)
    )
    action = CareAction.objects.filter(pk=referral.care_action_id, closed=False).first()
    if wanted is None or action is None:
        return
    if wanted == CareState.SERVED and can_move(action.kind, action.state, CareState.CONNECTED):
        care_action_move(
            actor=actor, action=action, to=CareState.CONNECTED, service=referral.service
        )
        action.refresh_from_db()
    if can_move(action.kind, action.state, wanted):
        care_action_move(
            actor=actor,
            action=action,
            to=wanted,
            service=referral.service if wanted == CareState.CONNECTED else None,
            result=referral.result if wanted == CareState.SERVED else "",
            note=_("By the subdistrict's referral"),
        )


def referrals_escalate(*, now: dt.datetime | None = None) -> int:
    """Escalate every overdue open referral to its district, once; returns how many."""
    now = now or timezone.now()
    due = Referral.objects.filter(
        closed=False, escalated_at__isnull=True, due_at__lte=now
    ).values_list("pk", flat=True)
    count = 0
    for pk in list(due):
        with transaction.atomic():
            claimed = Referral.objects.filter(
                pk=pk, closed=False, escalated_at__isnull=True, due_at__lte=now
            ).update(escalated_at=now)
            if not claimed:
                continue
            referral = Referral.objects.select_related("elder", "community").get(pk=pk)
            ReferralEvent.objects.create(
                referral=referral,
                at=now,
                event="escalated",
                from_state=referral.state,
                to_state=referral.state,
                note=_("Overdue since %(due)s; escalated to the district")
                % {"due": timezone.localtime(referral.due_at).strftime("%Y-%m-%d %H:%M")},
            )
            _tell(
                referral,
                what="escalated",
                template="referral_overdue",
                users=_staff(Role.DISTRICT_SUPERVISOR, referral.district_id),
                now=now,
            )
            count += 1
    return count
