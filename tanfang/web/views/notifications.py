"""Pages of family notifications: the public confirm/reply link, a worker's inbox, and the
contact list and notifications on the elder's page.

The confirm page (``/n/<token>/``) is public: the token (24 random bytes, only its hash
stored) is the key; it shows the message text and nothing else about the elder. Unknown
tokens get the ordinary 404 page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tanfang.accounts.access import public, requires
from tanfang.accounts.roles import Capability, can
from tanfang.notifications.contacts import (
    ContactError,
    family_contact_add,
    family_contact_deactivate,
)
from tanfang.notifications.models import FamilyContact, Notification
from tanfang.notifications.selectors import (
    contact_list,
    elder_notifications,
    inbox_forget,
    inbox_of,
    inbox_unread_count,
)
from tanfang.notifications.services import inbox_mark_read, notification_confirm, token_hash
from tanfang.registry.errors import AccessDenied
from tanfang.registry.models import ContactRelation, Elder
from tanfang.web.views.common import elder_or_404, private

INBOX_LIMIT = 100
CAUSE_PAGES = {"alert": "alerts", "emergency": "emergencies", "referral": "referrals"}


class FamilyContactForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=64)
    relation = forms.ChoiceField(label=gettext_lazy("Relation"), choices=ContactRelation.choices)
    phone = forms.CharField(label=gettext_lazy("Phone"), max_length=20, required=False)
    email = forms.CharField(label=gettext_lazy("E-mail"), max_length=254, required=False)


class ConfirmForm(forms.Form):
    reply = forms.CharField(
        label=gettext_lazy("Reply (optional)"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


# --------------------------------------------------------------------------- confirm link


def _by_token(token: str) -> Notification:
    if not token or len(token) > 100:
        raise Http404
    found = Notification.objects.filter(confirm_token_hash=token_hash(token)).first()
    if found is None:
        raise Http404
    return found


@public
@private
def notification_confirm_page(request: HttpRequest, token: str) -> HttpResponse:
    """The family member's page: the message, a Confirm button and a reply box."""
    notification = _by_token(token)
    form = ConfirmForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            notification_confirm(token=token, reply=form.cleaned_data["reply"])
            return redirect(reverse("notification-confirm", args=[token]) + "?done=1")
        status = 400
    else:
        status = 200
    response = render(
        request,
        "notifications/confirm.html",
        {"notification": notification, "form": form, "done": "done" in request.GET},
        status=status,
    )
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


# --------------------------------------------------------------------------- inbox


def cause_url(notification: Notification) -> str:
    """The page of what caused the message (alert, emergency, referral), when it exists."""
    page = CAUSE_PAGES.get(notification.cause_type)
    if page and notification.cause_id:
        return f"/{page}/{notification.cause_id}/"
    return ""


@requires(Capability.VIEW_ELDERS)
@private
def inbox(request: HttpRequest) -> HttpResponse:
    """The signed-in worker's inbox: unread first, with a link to the cause."""
    rows = list(inbox_of(request.user)[:INBOX_LIMIT])
    inbox_unread_count(request.user, fresh=True)  # the header's badge agrees with the list
    items = [{"message": m, "n": m.notification, "url": cause_url(m.notification)} for m in rows]
    return render(
        request,
        "notifications/inbox.html",
        {"items": items, "unread": sum(1 for m in rows if m.read_at is None)},
    )


@requires(Capability.VIEW_ELDERS)
@private
@require_POST
def inbox_read(request: HttpRequest) -> HttpResponse:
    """Mark the chosen messages (or all shown) read; only one's own messages change."""
    if request.POST.get("all"):
        ids = [m.pk for m in inbox_of(request.user).filter(read_at__isnull=True)[:INBOX_LIMIT]]
    else:
        ids = [int(v) for v in request.POST.getlist("message") if v.isdigit() and len(v) < 19]
    changed = inbox_mark_read(user=request.user, message_ids=ids)
    inbox_forget(request.user)
    if changed:
        messages.success(request, _("Marked as read."))
    return redirect("inbox")


# --------------------------------------------------------------------------- elder page


def elder_notification_context(
    request: HttpRequest, elder: Elder, *, family_form: FamilyContactForm | None = None
) -> dict[str, Any]:
    """The contact list (masked), the add form for those who edit elders, and who was told
    what about the elder."""
    first, family = contact_list(elder)
    relations = dict(ContactRelation.choices)
    for contact in family:
        contact.relation_label = relations.get(contact.relation, contact.relation)  # type: ignore[attr-defined]
    return {
        "contact_first": first,
        "family_contacts": family,
        "family_form": family_form or FamilyContactForm(),
        "may_edit_contacts": can(request.user, Capability.EDIT_ELDERS),
        "elder_notifications": elder_notifications(user=request.user, elder=elder),
    }


def _back(elder: Elder) -> HttpResponse:
    return redirect(reverse("elder-detail", args=[elder.pk]) + "#contacts")


@requires(Capability.EDIT_ELDERS)
@private
@require_POST
def elder_family_contact_add(request: HttpRequest, elder_id: int) -> HttpResponse:
    from tanfang.web.views.elder_page import render_elder

    elder = elder_or_404(request, elder_id)
    form = FamilyContactForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            family_contact_add(
                actor=request.user,
                elder=elder,
                name=d["name"],
                relation=d["relation"],
                phone=d["phone"],
                email=d["email"],
            )
        except ContactError as exc:
            form.add_error(None, str(exc))
        except AccessDenied:
            raise Http404 from None
        else:
            messages.success(request, _("The family contact was added."))
            return _back(elder)
    return render_elder(request, elder, family_form=form, status=400)


@requires(Capability.EDIT_ELDERS)
@private
@require_POST
def elder_family_contact_deactivate(request: HttpRequest, elder_id: int) -> HttpResponse:
    elder = elder_or_404(request, elder_id)
    raw = request.POST.get("contact", "")
    if not raw.isdigit() or len(raw) > 18:
        raise Http404
    contact = FamilyContact.objects.filter(pk=int(raw), elder=elder).first()
    if contact is None:
        raise Http404
    try:
        family_contact_deactivate(actor=request.user, contact=contact)
    except AccessDenied:
        raise Http404 from None
    messages.success(request, _("The family contact was taken off the list."))
    return _back(elder)
