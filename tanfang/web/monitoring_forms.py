"""Forms of the monitoring pages: the alerts filters, acknowledging, what was found, and an
elder's absence from home."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tanfang.monitoring.alerts import TECHNICAL_OUTCOMES
from tanfang.monitoring.models import AbsenceReason, AlertKind, AlertOutcome, Severity

# Outcomes after which the note must say what was done.
NOTE_REQUIRED = {
    AlertOutcome.NEEDED_HELP,
    AlertOutcome.EMERGENCY_HANDLED,
    AlertOutcome.HOSPITALISED,
    AlertOutcome.FOUND_DECEASED,
}
ABSENCE_MAX_DAYS = 366


class AlertFilterForm(forms.Form):
    """The alerts list's filters (GET). Empty or malformed values fall back to the defaults."""

    STATE_CHOICES = (
        ("active", _("Open and acknowledged")),
        ("open", _("Not yet acknowledged")),
        ("closed", _("Closed")),
        ("all", _("All")),
    )
    state = forms.ChoiceField(label=_("State"), choices=STATE_CHOICES, required=False)
    severity = forms.ChoiceField(
        label=_("Severity"), choices=[("", _("Any")), *Severity.choices], required=False
    )
    kind = forms.ChoiceField(
        label=_("Kind"), choices=[("", _("Any")), *AlertKind.choices], required=False
    )
    mine = forms.BooleanField(label=_("Assigned to me"), required=False)

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "state": data.get("state") or "active",
            "severity": data.get("severity") or "",
            "kind": data.get("kind") or "",
            "mine": bool(data.get("mine")),
        }


class AlertAcknowledgeForm(forms.Form):
    """Ids start with ``ack_``: the page also holds the close form, whose note is another."""

    note = forms.CharField(
        label=_("Note (optional)"),
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "ack_%s")
        super().__init__(*args, **kwargs)


class AlertCloseForm(forms.Form):
    outcome = forms.ChoiceField(
        label=_("What was found"), choices=AlertOutcome.choices, widget=forms.RadioSelect
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What you found and what was done. Required unless all was well."),
    )

    def __init__(self, *args: Any, technical: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "close_%s")
        super().__init__(*args, **kwargs)
        if technical:
            # A meter that stopped reporting says nothing about the person (alerts.py).
            outcome = self.fields["outcome"]
            assert isinstance(outcome, forms.ChoiceField)
            outcome.choices = [
                (value, label)
                for value, label in AlertOutcome.choices
                if value in TECHNICAL_OUTCOMES
            ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("outcome") in NOTE_REQUIRED and not (data.get("note") or "").strip():
            self.add_error("note", _("Say what was done."))
        return data


class AbsenceForm(forms.Form):
    reason = forms.ChoiceField(
        label=_("Where is the elder?"), choices=AbsenceReason.choices, widget=forms.RadioSelect
    )
    starts_on = forms.DateField(
        label=_("From"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    ends_on = forms.DateField(
        label=_("Until"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("Leave empty when the return is not known yet."),
    )
    note = forms.CharField(label=_("Note (optional)"), required=False, max_length=200)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        starts, ends = data.get("starts_on"), data.get("ends_on")
        today = timezone.localdate()
        if starts is not None and starts < today - dt.timedelta(days=ABSENCE_MAX_DAYS):
            self.add_error("starts_on", _("The absence cannot begin more than a year ago."))
        if starts is not None and starts > today + dt.timedelta(days=ABSENCE_MAX_DAYS):
            self.add_error("starts_on", _("The absence cannot begin more than a year ahead."))
        if starts is not None and ends is not None and ends < starts:
            self.add_error("ends_on", _("The end cannot be before the start."))
        return data
