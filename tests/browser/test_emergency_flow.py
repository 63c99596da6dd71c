"""The emergency flow in a real browser on a phone-sized screen (issue 5, "Done when"):

"emergency: the worker sees the call list, logs two failed calls and one answered, the case
closes with the timeline". On the demo city (``tanfang demo``, served by ``tanfang serve``):

1. an SOS button of one of the ``visitor`` account's elders is pressed: the device vendor's
   system pushes the event over HTTP (the demo vendor's published token);
2. the emergency is at the top of her worklist; she opens it and sees the call list (the
   first contact and a neighbour, with ``tel:`` links);
3. she logs two failed calls (no answer, busy) and one answered, confirms the case is being
   handled, and closes it with an outcome and a note;
4. the case shows closed, and its timeline lists the SOS, the family told, the three calls,
   the confirmation and the closing, in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.actions import fits_the_phone, press_sos, sign_in

pytestmark = pytest.mark.browser


def _an_elder_with_an_sos_button(page: Any, base: str) -> tuple[str, str]:
    """One of her elders with an SOS button, a first contact and no emergency open."""
    page.goto(base + "/worklist/")
    cards = page.locator("[data-testid=worklist-card]")
    elder_ids = [cards.nth(i).get_attribute("data-elder-id") for i in range(cards.count())]
    for elder_id in reversed(elder_ids):
        page.goto(f"{base}/elders/{elder_id}/")
        sos = page.locator("[data-testid=device-row][data-kind=sos] .mono")
        if sos.count() == 1 and page.locator("[data-testid=elder-emergency-open]").count() == 0:
            return str(elder_id), sos.inner_text().strip()
    raise AssertionError("the demo gives the visitor's elders SOS buttons")


def _log_call(page: Any, line: Any, result: str) -> None:
    line.locator(f"[data-testid=call-{result}]").click()
    page.wait_for_load_state()


def test_the_worker_calls_confirms_and_closes_an_emergency(
    demo_server: str, phone_page: Any, tmp_path: Path
) -> None:
    page = phone_page
    base = demo_server
    sign_in(page, base, "visitor")
    me = page.inner_text("[data-testid=current-user]").split("·")[0].strip()
    elder_id, device_id = _an_elder_with_an_sos_button(page, base)

    # The SOS is pressed: the case is hers, at the top of her worklist.
    answer = press_sos(base, device_id)
    assert answer["alert_created"] is True
    page.goto(base + "/worklist/")
    fits_the_phone(page)
    section = page.locator("[data-testid=worklist-emergencies]")
    assert section.count() == 1
    first = page.locator("[data-testid=worklist-emergency]").first
    assert first.get_attribute("data-elder-id") == elder_id
    assert first.get_attribute("data-trigger") == "sos"
    assert first.get_attribute("data-state") == "open"
    # Above the alerts and the elders to visit.
    tops = page.evaluate(
        """() => ['worklist-emergencies', 'worklist-alerts', 'worklist-overdue']
             .map(id => document.querySelector(`[data-testid=${id}]`))
             .filter(Boolean).map(el => el.getBoundingClientRect().top)"""
    )
    assert tops == sorted(tops) and len(tops) >= 2
    page.screenshot(path=str(tmp_path / "worklist-emergency.png"), full_page=True)

    # She opens it: the call list, with the first contact first and a tel: link.
    first.locator("[data-testid=emergency-link]").click()
    page.wait_for_load_state()
    fits_the_phone(page)
    assert page.get_attribute("[data-testid=emergency-state]", "data-state") == "open"
    assert page.get_attribute("[data-testid=emergency-trigger]", "data-trigger") == "sos"
    lines = page.locator("[data-testid=call-line]")
    assert lines.count() >= 3  # first contact, the neighbour, herself at least
    assert lines.nth(0).get_attribute("data-kind") == "first_contact"
    assert lines.nth(1).get_attribute("data-kind") == "family"
    tel = lines.nth(0).locator("[data-testid=call-tel]").get_attribute("href") or ""
    assert tel.startswith("tel:1") and "*" not in tel
    page.screenshot(path=str(tmp_path / "emergency-open.png"), full_page=True)

    # Two failed calls and one answered, each one tap.
    son, neighbour = lines.nth(0).get_attribute("data-ref"), lines.nth(1).get_attribute("data-ref")
    _log_call(page, page.locator(f"[data-testid=call-line][data-ref='{son}']"), "no_answer")
    _log_call(page, page.locator(f"[data-testid=call-line][data-ref='{neighbour}']"), "busy")
    _log_call(page, page.locator(f"[data-testid=call-line][data-ref='{son}']"), "answered")
    assert page.get_attribute("[data-testid=emergency-state]", "data-state") == "open"

    # She confirms it is being handled, then closes it with what came of it.
    page.fill("#confirm_note", "儿子已接电话，正赶往老人家")
    page.click("[data-testid=emergency-confirm]")
    page.wait_for_load_state()
    assert page.get_attribute("[data-testid=emergency-state]", "data-state") == "confirmed"
    page.check("input[name=outcome][value=helped_at_home]")
    page.fill("#close_note", "老人在家中摔倒，儿子和社区一起扶起，无大碍")
    page.click("[data-testid=emergency-close-submit]")
    page.wait_for_load_state()
    fits_the_phone(page)
    assert page.get_attribute("[data-testid=emergency-state]", "data-state") == "closed"
    assert page.get_attribute("[data-testid=emergency-outcome]", "data-outcome") == (
        "helped_at_home"
    )
    assert "摔倒" in page.inner_text("[data-testid=emergency-outcome-note]")

    # The timeline: the SOS, the family told, three calls, confirmation, closing.
    rows = page.locator("[data-testid=timeline-row]")
    timeline = [
        (
            rows.nth(i).get_attribute("data-kind"),
            rows.nth(i).get_attribute("data-channel"),
            rows.nth(i).get_attribute("data-result"),
            rows.nth(i).locator("[data-testid=timeline-by]").inner_text().strip(),
        )
        for i in range(rows.count())
    ]
    kinds = [kind for kind, *_ in timeline if kind not in ("sent", "delivered")]
    assert kinds[0] == "opened" and kinds[-2:] == ["confirmed", "closed"]
    told = [channel for kind, channel, *_ in timeline if kind == "notified"]
    assert "sms" in told and "inbox" in told
    assert [result for kind, _c, result, _w in timeline if kind == "call"] == [
        "no_answer",
        "busy",
        "answered",
    ]
    assert {who for kind, _c, _r, who in timeline if kind in ("call", "confirmed", "closed")} == {
        me
    }
    page.screenshot(path=str(tmp_path / "emergency-closed.png"), full_page=True)

    # No longer on her worklist.
    page.goto(base + "/worklist/")
    assert (
        page.locator(f"[data-testid=worklist-emergency][data-elder-id='{elder_id}']").count() == 0
    )
