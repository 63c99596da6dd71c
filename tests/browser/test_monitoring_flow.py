"""The monitoring flow in a real browser on a phone-sized screen (issue 4, "Done when"):

an alert arrives, the visitor acknowledges it and records the outcome. On the demo city
(``tanfang demo``: meters replaying real homes' data, an incident injected for one of the
``visitor`` account's elders, a detection tick):

1. an SOS button of one of her elders is pressed: the device vendor's system pushes the
   event over HTTP (``/api/v1/ingest/device-events/``, the demo vendor's published token);
2. the alert is on her worklist at once, at the top; she opens it, acknowledges it, records
   "all well" with a note; it shows closed, and its history says who did what;
3. the water alert of the injected incident (raised by the demo's tick from the real data):
   she opens it, sees the chart of the last 48 hours against the home's usual hours,
   acknowledges it and records the outcome with a note.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.actions import fits_the_phone, press_sos, sign_in

pytestmark = pytest.mark.browser


def _history(page: Any) -> list[tuple[str, str]]:
    events = page.locator("[data-testid=alert-event]")
    return [
        (
            events.nth(i).get_attribute("data-action") or "",
            events.nth(i).locator("[data-testid=alert-event-by]").inner_text().strip(),
        )
        for i in range(events.count())
    ]


def _acknowledge_and_close(page: Any, note: str) -> None:
    page.fill("#ack_note", "正在联系老人")
    page.click("[data-testid=alert-acknowledge]")
    page.wait_for_load_state()
    assert page.get_attribute("[data-testid=alert-state]", "data-state") == "acknowledged"
    page.check("input[name=outcome][value=all_well]")
    page.fill("#close_note", note)
    page.click("[data-testid=alert-close-submit]")
    page.wait_for_load_state()


def test_an_alert_arrives_the_visitor_acknowledges_it_and_records_the_outcome(
    demo_server: str, phone_page: Any, tmp_path: Path
) -> None:
    page = phone_page
    base = demo_server
    sign_in(page, base, "visitor")
    me = page.inner_text("[data-testid=current-user]").split("·")[0].strip()

    # Her worklist already shows the demo's water alert (the injected incident).
    page.click("#nav-worklist")
    page.wait_for_load_state()
    fits_the_phone(page)
    water = page.locator("[data-testid=worklist-alert]:not([data-kind=device])")
    assert water.count() >= 1, "the demo raises an alert for one of the visitor's elders"
    water_id = water.first.get_attribute("data-alert-id")
    elder_id = water.first.get_attribute("data-elder-id")

    # The elder's page lists her SOS button.
    page.goto(f"{base}/elders/{elder_id}/")
    fits_the_phone(page)
    sos = page.locator("[data-testid=device-row][data-kind=sos] .mono")
    assert sos.count() == 1
    device_id = sos.inner_text().strip()
    page.screenshot(path=str(tmp_path / "elder-monitoring.png"), full_page=True)

    # The SOS button is pressed: the vendor pushes the event; the alert is hers at once.
    pressed = time.monotonic()
    answer = press_sos(base, device_id)
    assert answer["alert_created"] is True and answer["alert"]
    sos_id = str(answer["alert"])
    page.goto(base + "/worklist/")
    first = page.locator("[data-testid=worklist-alert]").first
    assert first.get_attribute("data-alert-id") == sos_id, "the new SOS is the most urgent"
    assert first.get_attribute("data-kind") == "device"
    assert time.monotonic() - pressed < 5
    page.screenshot(path=str(tmp_path / "worklist-alerts.png"), full_page=True)

    # She opens it, acknowledges it, and records what she found.
    first.locator("[data-testid=alert-link]").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/alerts/{sos_id}/")
    fits_the_phone(page)
    assert page.get_attribute("[data-testid=alert-state]", "data-state") == "open"
    assert page.get_attribute("[data-testid=alert-severity]", "data-severity") == "critical"
    assert page.locator("[data-testid=alert-rule]").inner_text().strip()
    _acknowledge_and_close(page, "老人误按了呼叫按钮，电话确认一切正常")
    assert page.get_attribute("[data-testid=alert-state]", "data-state") == "closed"
    assert page.get_attribute("[data-testid=alert-outcome]", "data-outcome") == "all_well"
    assert "误按" in page.inner_text("[data-testid=alert-outcome-note]")
    history = _history(page)
    assert [action for action, _who in history] == [
        "raised",
        "assigned",
        "acknowledged",
        "closed",
    ]
    assert [who for action, who in history if action in ("acknowledged", "closed")] == [me, me]
    fits_the_phone(page)
    page.screenshot(path=str(tmp_path / "sos-closed.png"), full_page=True)

    # The water alert of the incident: the chart of the last 48 hours, then the same steps.
    page.goto(f"{base}/alerts/{water_id}/")
    fits_the_phone(page)
    assert page.get_attribute("[data-testid=alert-state]", "data-state") == "open"
    chart = page.locator("svg[data-testid=alert-chart]")
    assert chart.count() == 1
    assert chart.locator("rect.chart-bar").count() > 10
    assert chart.locator("path.chart-usual").count() >= 1
    assert chart.locator("[data-testid=chart-marker-began]").count() == 1
    box = chart.bounding_box()
    assert box is not None and 300 <= box["width"] <= 375
    assert page.inner_text("[data-testid=alert-started]").strip()
    assert page.inner_text("[data-testid=alert-detected]").strip()
    assert page.inner_text("[data-testid=alert-visitor]").strip() == me
    page.screenshot(path=str(tmp_path / "water-alert.png"), full_page=True)
    _acknowledge_and_close(page, "上门查看，老人在女儿家住了一晚，一切正常")
    assert page.get_attribute("[data-testid=alert-state]", "data-state") == "closed"
    assert page.get_attribute("[data-testid=alert-outcome]", "data-outcome") == "all_well"
    assert [who for action, who in _history(page) if action == "closed"] == [me]
    page.screenshot(path=str(tmp_path / "water-alert-closed.png"), full_page=True)

    # Neither is on her worklist any more.
    page.goto(base + "/worklist/")
    shown = page.locator("[data-testid=worklist-alert]")
    ids = {shown.nth(i).get_attribute("data-alert-id") for i in range(shown.count())}
    assert not ids & {sos_id, water_id}
