"""The visits flow in a real browser on a phone-sized screen (issue 3, "Done when"):

the visitor opens her worklist, records an in-home visit with a gas hazard and a need for
rehabilitation nursing, and sees the care actions it opened; the community worker closes the
hazard; the subdistrict's weekly visit rate moves by that one visit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

PASSWORD = "tanfang-demo"


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_load_state()


def _sign_out(page: Any) -> None:
    page.click("[data-testid=logout]")
    page.wait_for_load_state()


def _fits_the_phone(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, page.url


def _weekly_rate(page: Any, base: str) -> tuple[str, int, int]:
    """The subdistrict's own row on the rates page (this week): (code, visited, due)."""
    page.goto(base + "/rates/")
    page.wait_for_load_state()
    own = page.locator("[data-testid=rate-row].total")
    code = own.get_attribute("data-area-code")
    assert code
    visited = int(page.inner_text(f"[data-testid=rate-{code}-visited]").strip())
    due = int(page.inner_text(f"[data-testid=rate-{code}-due]").strip())
    return code, visited, due


def test_a_visit_on_a_phone_opens_care_actions_that_are_followed_and_the_rate_moves(
    demo_server: str, phone_page: Any, tmp_path: Path
) -> None:
    page = phone_page
    base = demo_server

    # The subdistrict's weekly rate before the visit.
    _sign_in(page, base, "street")
    code, visited_before, due_before = _weekly_rate(page, base)
    assert len(code) == 9, code  # a subdistrict's code
    assert visited_before < due_before, "the demo leaves the visitor's elders for this week"
    _sign_out(page)

    # The visitor opens her worklist.
    _sign_in(page, base, "visitor")
    page.click("#nav-worklist")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    _fits_the_phone(page)
    cards = page.locator("[data-testid=worklist-card]")
    assert cards.count() > 0, "the demo visitor has elders due this week"
    card = cards.first
    elder_id = card.get_attribute("data-elder-id")
    name = card.locator("[data-testid=worklist-elder]").inner_text().strip()
    page.screenshot(path=str(tmp_path / "worklist.png"), full_page=True)

    # She records an in-home visit: a gas hazard, a need for rehabilitation nursing, consent.
    card.locator("[data-testid=record-visit]").click()
    page.wait_for_load_state()
    assert f"/elders/{elder_id}/visits/new/" in page.url
    _fits_the_phone(page)
    page.check("input[name=mode][value=in_home]")
    page.check("input[name=person_met][value=elder]")
    page.check("input[name=outcome][value=met]")
    page.click("[data-testid=section-safety]")
    page.check("input[name=safety-gas-hazard][value=yes]")
    page.fill("#id_safety-gas-what", "燃气软管老化开裂")
    page.click("[data-testid=section-needs]")
    page.check("input[name=needs-kinds][value=rehabilitation_nursing]")
    page.check("#id_consent")
    # The optional check-in: the phone's location, filled in by "add my location".
    page.context.grant_permissions(["geolocation"], origin=base)
    page.context.set_geolocation({"latitude": 39.9289, "longitude": 116.4168, "accuracy": 15})
    page.click("[data-testid=location-add]")
    page.wait_for_function("document.getElementById('id_latitude').value !== ''")
    assert "15" in page.inner_text("[data-testid=location-status]")
    _fits_the_phone(page)
    page.screenshot(path=str(tmp_path / "visit-form.png"), full_page=True)
    page.click("[data-testid=visit-submit]")
    page.wait_for_load_state()

    # The record: risk and the care actions it opened.
    assert "/visits/" in page.url, page.content()[:2000]
    visit_url = page.url
    _fits_the_phone(page)
    assert page.inner_text("[data-testid=visit-elder-name]").strip() == name
    assert page.get_attribute("[data-testid=visit-risk]", "data-risk") == "high"
    gas = page.locator("[data-testid=visit-care-action][data-kind=hazard][data-subject=gas]")
    nursing = page.locator(
        "[data-testid=visit-care-action][data-kind=service][data-subject=rehabilitation_nursing]"
    )
    assert gas.count() == 1 and nursing.count() == 1
    assert page.locator("[data-testid=visit-correct]").count() == 1
    assert "39.928900, 116.416800" in page.inner_text("[data-testid=visit-location]")
    page.screenshot(path=str(tmp_path / "visit-record.png"), full_page=True)
    _sign_out(page)

    # The community worker closes the hazard.
    _sign_in(page, base, "community")
    page.click("#nav-care")
    page.wait_for_load_state()
    _fits_the_phone(page)
    row = page.locator(f"[data-testid=care-row][data-elder-id='{elder_id}'][data-subject=gas]")
    assert row.count() == 1
    row.locator("[data-testid=care-link]").click()
    page.wait_for_load_state()
    for _step in range(3):
        if page.get_attribute("[data-testid=care-state]", "data-closed") == "true":
            break
        offered = page.locator("input[name=to][value=removed]")
        target = "removed" if offered.count() else "reminded"
        page.check(f"input[name=to][value={target}]")
        page.fill("#id_result", "已更换燃气软管，复查无漏气")
        page.click("[data-testid=care-move-submit]")
        page.wait_for_load_state()
    assert page.get_attribute("[data-testid=care-state]", "data-state") == "removed"
    assert page.get_attribute("[data-testid=care-state]", "data-closed") == "true"
    _fits_the_phone(page)
    page.goto(visit_url)
    assert (
        page.locator("[data-testid=visit-care-action][data-subject=gas]").get_attribute(
            "data-state"
        )
        == "removed"
    )
    _sign_out(page)

    # The subdistrict's weekly rate moved by this one visit.
    _sign_in(page, base, "street")
    code_after, visited_after, due_after = _weekly_rate(page, base)
    assert code_after == code
    assert (visited_after, due_after) == (visited_before + 1, due_before)
