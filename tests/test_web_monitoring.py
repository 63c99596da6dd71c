"""The monitoring pages: the alerts list (scope, order, filters, audit, a query count that does
not grow), one alert (rule in words, chart, history; 404 outside the scope; audited),
acknowledging and closing it (and the forms' errors), the worklist's alerts, and the elder
page's monitoring section with its absence form."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role, User
from tanfang.areas.models import Area
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.monitoring.alerts import Raise, alert_acknowledge, alert_close, alert_raise
from tanfang.monitoring.models import (
    Absence,
    Alert,
    AlertAction,
    AlertEvent,
    AlertState,
    DataPartner,
    Device,
    Meter,
)
from tanfang.registry.models import Elder
from tanfang.visits.models import ElderVisitStatus
from tanfang.web.alert_chart import chart, series_from_evidence
from tests.factories import assign, lonely_widow, make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db

_keys = iter(range(1, 10_000))


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@dataclass
class World:
    community: Area
    other_community: Area
    visitor: User
    worker: User
    partner_user: User
    partner: DataPartner
    elder: Elder
    stranger: Elder  # another community's elder
    meter: Meter


def _series(end: dt.datetime, *, quiet_hours: int = 14) -> dict[str, Any]:
    """48 hourly values ending at ``end``: a routine, then nothing for ``quiet_hours``."""
    start = int(end.timestamp()) - 48 * 3600
    usage: list[float | None] = [30.0 if h % 24 in (7, 8, 19, 20) else 2.0 for h in range(48)]
    for h in range(48 - quiet_hours, 48):
        usage[h] = 0.0
    usage[5] = None  # an hour not covered by readings
    usual: list[float | None] = [25.0 if h % 24 in (7, 8, 19, 20) else 1.5 for h in range(48)]
    return {"start": start, "step_s": 3600, "unit": "L", "usage": usage, "usual": usual}


def raise_alert(
    meter: Meter,
    *,
    kind: str = "missed_routine",
    rule: str = "routine_missed",
    severity: str = "high",
    hours_ago: float = 2,
    series: bool = True,
) -> Alert:
    now = timezone.now()
    detected = now - dt.timedelta(hours=hours_ago)
    evidence: dict[str, Any] = {
        "basis": "days",
        "inactive_hours": 11.5,
        "threshold_hours": 9.25,
        "utility": meter.utility,
    }
    if kind == "data_silence":
        evidence = {"last_reading": "2026-01-01T00:00:00Z", "silent_hours": 7.5}
    if series:
        evidence["series"] = _series(detected)
    alert, created = alert_raise(
        Raise(
            key=f"{meter.meter_id}:{rule}:{next(_keys)}",
            kind=kind,
            rule=rule,
            severity=severity,
            started_at=detected - dt.timedelta(hours=11),
            detected_at=detected,
            evidence=evidence,
            meter=meter,
        ),
        now=now,
    )
    assert alert is not None and created
    return alert


def make_meter(partner: DataPartner, elder: Elder | None, meter_id: str) -> Meter:
    return Meter.objects.create(
        meter_id=meter_id,
        partner=partner,
        elder=elder,
        utility="water",
        register="cumulative",
        unit="L",
        interval_minutes=60,
    )


@pytest.fixture
def world() -> World:
    tree = make_tree()
    community, other = tree.communities[0], tree.communities[1]
    visitor = make_user(Role.VISITOR, community)
    worker = make_user(Role.COMMUNITY_WORKER, community)
    partner_user = make_user(Role.DATA_PARTNER, tree.city)
    partner = DataPartner.objects.create(
        code="water-co", name="自来水公司", kind="water_utility", contact=partner_user
    )
    elder = lonely_widow(community, name="李桂英")
    assign(elder, visitor)
    stranger = parent_with_son(other, name="赵建国")
    meter = make_meter(partner, elder, "W-1")
    return World(community, other, visitor, worker, partner_user, partner, elder, stranger, meter)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def alert_ids(html: str, testid: str = "alert-row") -> list[int]:
    return [int(m) for m in re.findall(rf'data-testid="{testid}" data-alert-id="(\d+)"', html)]


# -- the list ------------------------------------------------------------------------------
def test_the_list_shows_the_alerts_of_the_users_scope_only_and_is_audited(world: World) -> None:
    mine = raise_alert(world.meter)
    outside = raise_alert(make_meter(world.partner, world.stranger, "W-2"))
    technical = raise_alert(
        make_meter(world.partner, world.elder, "W-3"), kind="data_silence", rule="silence"
    )

    response = signed_in(world.visitor).get(reverse("alert-list"))

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    html = response.content.decode()
    assert alert_ids(html) == [mine.pk]
    assert outside.pk not in alert_ids(html) and technical.pk not in alert_ids(html)
    assert "李桂英" in html and "赵建国" not in html
    entry = AuditEntry.objects.filter(actor=world.visitor, action=AuditAction.VIEW_LIST).get()
    assert entry.details["page"] == "alerts"
    assert entry.details["elder_ids"] == [world.elder.pk]
    # A meter that stopped reporting is asked for by its kind; the partner sees only those.
    worker = signed_in(world.worker)
    html = worker.get(reverse("alert-list") + "?kind=data_silence").content.decode()
    assert alert_ids(html) == [technical.pk]
    partner = signed_in(world.partner_user)
    html = partner.get(reverse("alert-list")).content.decode()
    assert alert_ids(html) == [technical.pk]
    assert "李桂英" not in html and "W-3" in html
    # Its page shows the meter, never the elder; it closes as false alarm or all well only.
    html = partner.get(reverse("alert-detail", args=[technical.pk])).content.decode()
    assert "李桂英" not in html and world.community.name not in html
    assert 'value="all_well"' in html and 'value="needed_help"' not in html
    assert partner.get(reverse("alert-detail", args=[mine.pk])).status_code == 404
    response = partner.post(
        reverse("alert-close", args=[technical.pk]), {"outcome": "needed_help", "note": "x"}
    )
    assert response.status_code == 400
    response = partner.post(reverse("alert-close", args=[technical.pk]), {"outcome": "all_well"})
    assert response.status_code == 302
    assert Alert.objects.get(pk=technical.pk).outcome == "all_well"
    viewed = AuditEntry.objects.filter(actor=world.partner_user, action=AuditAction.VIEW_RECORD)
    assert viewed.exists() and {e.elder_id for e in viewed} == {None}


def test_open_first_then_by_severity_then_newest(world: World) -> None:
    old_critical = raise_alert(world.meter, severity="critical", hours_ago=5)
    warning = raise_alert(
        world.meter, kind="low_usage", rule="routine_low_usage", severity="medium"
    )
    new_critical = raise_alert(world.meter, severity="critical", hours_ago=1)
    acknowledged = raise_alert(world.meter, severity="critical", hours_ago=0.5)
    alert_acknowledge(acknowledged, actor=world.visitor)
    closed = raise_alert(world.meter, severity="critical", hours_ago=0.2)
    alert_close(closed, actor=world.visitor, outcome="all_well")
    client = signed_in(world.visitor)

    html = client.get(reverse("alert-list") + "?state=all").content.decode()
    assert alert_ids(html) == [
        new_critical.pk,
        old_critical.pk,
        warning.pk,
        acknowledged.pk,
        closed.pk,
    ]
    # The default: what is not closed yet.
    html = client.get(reverse("alert-list")).content.decode()
    assert alert_ids(html) == [new_critical.pk, old_critical.pk, warning.pk, acknowledged.pk]
    html = client.get(reverse("alert-list") + "?state=closed").content.decode()
    assert alert_ids(html) == [closed.pk]
    html = client.get(reverse("alert-list") + "?severity=warning").content.decode()
    assert alert_ids(html) == [warning.pk]
    html = client.get(reverse("alert-list") + "?kind=low_usage&state=all").content.decode()
    assert alert_ids(html) == [warning.pk]
    # Nonsense in the filters falls back to the defaults rather than failing.
    response = client.get(reverse("alert-list") + "?state=nonsense&severity=x")
    assert response.status_code == 200
    assert len(alert_ids(response.content.decode())) == 4


def test_assigned_to_me_narrows_the_community_workers_list(world: World) -> None:
    raise_alert(world.meter)  # assigned to the visitor
    orphan = lonely_widow(world.community, name="周淑珍")  # no visitor: the worker's
    hers = raise_alert(make_meter(world.partner, orphan, "W-9"))
    client = signed_in(world.worker)

    assert len(alert_ids(client.get(reverse("alert-list")).content.decode())) == 2
    html = client.get(reverse("alert-list") + "?mine=on").content.decode()
    assert alert_ids(html) == [hers.pk]


def test_the_list_query_count_does_not_grow(world: World) -> None:
    client = signed_in(world.worker)
    raise_alert(world.meter)
    client.get(reverse("alert-list"))  # session and user loaded once

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("alert-list")).status_code == 200
        return len(captured.captured_queries)

    few = queries()
    for n in range(12):
        elder = lonely_widow(world.community, name=f"多{n}")
        raise_alert(make_meter(world.partner, elder, f"M-{n}"), hours_ago=n)
    assert queries() == few
    # session, user, the user's area (the header), the alerts, the audit entry
    assert few == 5


def test_roles_without_alerts_are_refused_and_see_no_link(world: World) -> None:
    auditor = make_user(Role.AUDITOR, world.community)
    client = signed_in(auditor)
    assert client.get(reverse("alert-list")).status_code == 403
    alert = raise_alert(world.meter)
    assert client.get(reverse("alert-detail", args=[alert.pk])).status_code == 403
    assert 'id="nav-alerts"' not in client.get(reverse("home"), follow=True).content.decode()
    html = signed_in(world.visitor).get(reverse("worklist")).content.decode()
    assert 'id="nav-alerts"' in html


# -- one alert -----------------------------------------------------------------------------
def test_the_alert_page_says_what_was_seen_and_draws_the_chart(world: World) -> None:
    alert = raise_alert(world.meter)

    response = signed_in(world.visitor).get(reverse("alert-detail", args=[alert.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="alert-severity" data-severity="critical"' in html
    assert 'data-testid="alert-state" data-state="open"' in html
    rule = html.split('data-testid="alert-rule">', 1)[1].split("</p>", 1)[0]
    assert "11.5" in rule and "9.2" in rule
    assert world.visitor.username in html.split('data-testid="alert-visitor">', 1)[1][:200]
    assert world.community.name in html
    svg = html.split('data-testid="alert-chart"', 1)[1].split("</svg>", 1)[0]
    assert svg.count('class="chart-bar"') >= 30
    assert 'class="chart-usual"' in svg
    assert 'data-testid="chart-marker-began"' in svg
    assert 'data-testid="chart-marker-detected"' in svg
    assert 'data-testid="alert-acknowledge"' in html
    assert 'name="outcome" value="all_well"' in html
    actions = [a for a in re.findall(r'data-testid="alert-event" data-action="(\w+)"', html)]
    assert actions == ["raised", "assigned"]
    entry = AuditEntry.objects.filter(action=AuditAction.VIEW_RECORD).get()
    assert entry.elder_id == world.elder.pk
    assert entry.details == {"page": "alert", "alert": alert.pk}


def test_an_alert_outside_the_scope_answers_404_and_is_not_audited(world: World) -> None:
    outside = raise_alert(make_meter(world.partner, world.stranger, "W-2"))
    client = signed_in(world.visitor)

    assert client.get(reverse("alert-detail", args=[outside.pk])).status_code == 404
    assert client.get(reverse("alert-detail", args=[99999])).status_code == 404
    response = client.post(reverse("alert-acknowledge", args=[outside.pk]))
    assert response.status_code == 404
    response = client.post(reverse("alert-close", args=[outside.pk]), {"outcome": "all_well"})
    assert response.status_code == 404
    assert Alert.objects.get(pk=outside.pk).state == AlertState.OPEN
    assert not AuditEntry.objects.filter(elder_id=world.stranger.pk).exists()


def test_without_a_series_the_page_says_there_is_no_chart(world: World) -> None:
    alert = raise_alert(world.meter, series=False)
    html = signed_in(world.visitor).get(reverse("alert-detail", args=[alert.pk])).content
    assert b'data-testid="alert-no-chart"' in html
    Alert.objects.filter(pk=alert.pk).update(evidence={"series": {"start": "x", "usage": "y"}})
    response = signed_in(world.visitor).get(reverse("alert-detail", args=[alert.pk]))
    assert response.status_code == 200
    assert b'data-testid="alert-no-chart"' in response.content


def test_acknowledge_then_close_with_a_note(world: World) -> None:
    alert = raise_alert(world.meter)
    client = signed_in(world.visitor)

    response = client.post(reverse("alert-acknowledge", args=[alert.pk]), {"note": "正在电话联系"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED
    assert alert.acknowledged_by == world.visitor and alert.escalate_at is None
    ack = AlertEvent.objects.get(alert=alert, action=AlertAction.ACKNOWLEDGED)
    assert (ack.by, ack.note) == (world.visitor, "正在电话联系")
    # Twice is refused with a message, nothing changes.
    response = client.post(reverse("alert-acknowledge", args=[alert.pk]), follow=True)
    assert "already" in response.content.decode() or "已" in response.content.decode()
    assert AlertEvent.objects.filter(alert=alert, action=AlertAction.ACKNOWLEDGED).count() == 1

    response = client.post(
        reverse("alert-close", args=[alert.pk]),
        {"outcome": "all_well", "note": "老人去邻居家了，一切正常"},
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.state, alert.outcome, alert.closed_by) == (
        AlertState.CLOSED,
        "all_well",
        world.visitor,
    )
    assert alert.outcome_note == "老人去邻居家了，一切正常"
    reasons = set(
        AuditEntry.objects.filter(
            action=AuditAction.UPDATE_RECORD, elder_id=world.elder.pk
        ).values_list("reason", flat=True)
    )
    assert reasons == {"alert acknowledge", "alert close"}
    html = client.get(reverse("alert-detail", args=[alert.pk])).content.decode()
    assert 'data-testid="alert-outcome" data-outcome="all_well"' in html
    assert 'data-testid="alert-close-submit"' not in html
    history = html.split('data-testid="alert-history"', 1)[1]
    assert re.findall(r'data-action="(\w+)"', history) == [
        "raised",
        "assigned",
        "acknowledged",
        "closed",
    ]
    assert history.count(str(world.visitor)) >= 2
    # Closing again is an error on the form.
    response = client.post(reverse("alert-close", args=[alert.pk]), {"outcome": "false_alarm"})
    assert response.status_code == 400
    assert Alert.objects.get(pk=alert.pk).outcome == "all_well"


def test_the_close_forms_errors(world: World) -> None:
    alert = raise_alert(world.meter)
    client = signed_in(world.visitor)

    response = client.post(reverse("alert-close", args=[alert.pk]), {"note": "x"})
    assert response.status_code == 400
    assert 'data-testid="error-outcome"' in response.content.decode()
    response = client.post(reverse("alert-close", args=[alert.pk]), {"outcome": "needed_help"})
    assert response.status_code == 400
    assert 'data-testid="error-note"' in response.content.decode()
    response = client.post(reverse("alert-close", args=[alert.pk]), {"outcome": "bogus"})
    assert response.status_code == 400
    response = client.post(reverse("alert-acknowledge", args=[alert.pk]), {"note": "长" * 501})
    assert response.status_code == 400
    assert Alert.objects.get(pk=alert.pk).state == AlertState.OPEN
    assert client.get(reverse("alert-close", args=[alert.pk])).status_code == 405


def test_a_closed_alert_closes_closed_and_hospitalised_sets_the_life_status(
    world: World,
) -> None:
    alert = raise_alert(world.meter)
    response = signed_in(world.worker).post(
        reverse("alert-close", args=[alert.pk]),
        {"outcome": "hospitalised", "note": "送往医院"},
    )
    assert response.status_code == 302
    world.elder.refresh_from_db()
    assert world.elder.life_status == "in_hospital"


# -- the worklist --------------------------------------------------------------------------
def _due(elder: Elder, community: Area) -> None:
    ElderVisitStatus.objects.update_or_create(
        elder=elder,
        defaults={
            "community": community,
            "frequency": "week",
            "computed_on": timezone.localdate(),
            "next_due_on": timezone.localdate(),
        },
    )


def test_the_worklist_starts_with_her_open_alerts_most_urgent_first(world: World) -> None:
    _due(world.elder, world.community)
    warning = raise_alert(
        world.meter, kind="low_usage", rule="routine_low_usage", severity="medium"
    )
    critical = raise_alert(world.meter, severity="critical", hours_ago=6)
    closed = raise_alert(world.meter)
    alert_close(closed, actor=world.visitor, outcome="false_alarm")
    raise_alert(make_meter(world.partner, world.stranger, "W-2"))
    client = signed_in(world.visitor)

    html = client.get(reverse("worklist")).content.decode()

    section = html.split('data-testid="worklist-alerts"', 1)[1].split("</section>", 1)[0]
    assert alert_ids(section, "worklist-alert") == [critical.pk, warning.pk]
    assert html.index('data-testid="worklist-alerts"') < html.index('data-testid="worklist-card"')
    entry = AuditEntry.objects.filter(action=AuditAction.VIEW_LIST).latest("id")
    assert entry.details["alert_elder_ids"] == [world.elder.pk]


def test_the_worklist_without_alerts_has_no_section_and_a_steady_query_count(
    world: World,
) -> None:
    _due(world.elder, world.community)
    client = signed_in(world.visitor)
    client.get(reverse("worklist"))
    assert b'data-testid="worklist-alerts"' not in client.get(reverse("worklist")).content

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("worklist")).status_code == 200
        return len(captured.captured_queries)

    raise_alert(world.meter)
    few = queries()
    for n in range(6):
        elder = lonely_widow(world.community, name=f"多{n}")
        assign(elder, world.visitor)
        raise_alert(make_meter(world.partner, elder, f"M-{n}"))
    assert queries() == few


# -- the elder page ------------------------------------------------------------------------
def test_the_elder_page_shows_meters_devices_and_recent_alerts(world: World) -> None:
    Device.objects.create(device_id="SOS-1", partner=world.partner, elder=world.elder, kind="sos")
    silent_meter = make_meter(world.partner, world.elder, "W-4")
    raise_alert(silent_meter, kind="data_silence", rule="silence", series=False)
    alert = raise_alert(world.meter)

    html = signed_in(world.visitor).get(reverse("elder-detail", args=[world.elder.pk])).content
    page = html.decode()

    section = page.split('data-testid="elder-monitoring"', 1)[1].split("</section>", 1)[0]
    assert section.count('data-testid="meter-row"') == 2
    assert section.count('data-testid="meter-silent"') == 1
    assert 'data-testid="device-row" data-kind="sos"' in section
    assert alert_ids(section, "elder-alert") == [alert.pk]  # the technical one is a flag
    assert 'id="absence-form"' in section


def test_the_elder_page_query_count_with_monitoring(world: World) -> None:
    raise_alert(world.meter)
    client = signed_in(world.worker)
    client.get(reverse("elder-detail", args=[world.elder.pk]))
    with CaptureQueriesContext(connection) as captured:
        client.get(reverse("elder-detail", args=[world.elder.pk]))
    # The page's own (tests/test_web_elder_page.py) and four of monitoring: meters, devices,
    # alerts, absences; three of the contact list (family contacts, who was told what, its
    # messages); one of the elder's open emergency case.
    assert len(captured.captured_queries) <= 16 + 4 + 3 + 1


def test_an_absence_is_recorded_audited_and_silences_person_alerts(world: World) -> None:
    client = signed_in(world.visitor)
    today = timezone.localdate()

    response = client.post(
        reverse("elder-absence", args=[world.elder.pk]),
        {
            "reason": "hospital",
            "starts_on": today.isoformat(),
            "ends_on": (today + dt.timedelta(days=5)).isoformat(),
            "note": "住院观察",
        },
    )

    assert response.status_code == 302
    absence = Absence.objects.get(elder=world.elder)
    assert (absence.reason, absence.by, absence.note) == ("hospital", world.visitor, "住院观察")
    assert AuditEntry.objects.filter(
        action=AuditAction.UPDATE_RECORD, elder_id=world.elder.pk, reason="absence recorded"
    ).exists()
    page = client.get(reverse("elder-detail", args=[world.elder.pk])).content.decode()
    assert 'data-testid="absence-row" data-reason="hospital"' in page
    # No inactivity alert while she is away; a device alarm still is.
    found, created = alert_raise(
        Raise(
            key="W-1:routine_missed:absent",
            kind="missed_routine",
            rule="routine_missed",
            severity="high",
            started_at=timezone.now(),
            detected_at=timezone.now(),
            evidence={},
            meter=world.meter,
        )
    )
    assert (found, created) == (None, False)

    # Back home: the absence ends (yesterday at the latest, never before its start).
    response = client.post(reverse("elder-absence", args=[world.elder.pk]), {"end": absence.pk})
    assert response.status_code == 302
    absence.refresh_from_db()
    assert absence.ends_on == today


def test_the_absence_forms_errors(world: World) -> None:
    client = signed_in(world.visitor)
    today = timezone.localdate()
    url = reverse("elder-absence", args=[world.elder.pk])

    response = client.post(
        url,
        {
            "reason": "away",
            "starts_on": today.isoformat(),
            "ends_on": (today - dt.timedelta(days=1)).isoformat(),
        },
    )
    assert response.status_code == 400
    assert 'data-testid="error-ends_on"' in response.content.decode()
    response = client.post(url, {"reason": "moon", "starts_on": "yesterday"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="error-reason"' in html and 'data-testid="error-starts_on"' in html
    old = today - dt.timedelta(days=400)
    response = client.post(url, {"reason": "away", "starts_on": old.isoformat()})
    assert response.status_code == 400
    assert not Absence.objects.exists()
    # Another community's elder: 404, nothing written.
    response = client.post(
        reverse("elder-absence", args=[world.stranger.pk]),
        {"reason": "away", "starts_on": today.isoformat()},
    )
    assert response.status_code == 404
    assert not Absence.objects.exists()


# -- the chart -----------------------------------------------------------------------------
def test_the_chart_scales_marks_gaps_and_reads_electricity_in_kwh() -> None:
    end = dt.datetime(2026, 3, 4, 10, tzinfo=dt.UTC)
    raw = _series(end)
    series = series_from_evidence({"series": raw})
    assert series is not None
    drawn = chart(series, started_at=end - dt.timedelta(hours=14), detected_at=end)
    assert drawn["y_max"] == "50" and drawn["unit"] == "L"
    assert sum(1 for b in drawn["bars"] if b["missing"]) == 1
    assert [m["kind"] for m in drawn["markers"]] == ["began", "detected"]
    assert all(drawn["left"] <= t["x"] <= drawn["right"] for t in drawn["ticks"])
    assert drawn["last_day"] == "0" or float(drawn["last_day"]) < float(drawn["usual_day"])

    power = series_from_evidence({"series": {**raw, "unit": "Wh"}})
    assert power is not None
    assert chart(power, started_at=None, detected_at=None)["unit"] == "kWh"
    assert series_from_evidence({"series": {**raw, "usage": []}}) is None
    assert series_from_evidence({}) is None
    assert series_from_evidence("nonsense") is None
