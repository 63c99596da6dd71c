"""The foundation's flow in a real browser on a phone-sized screen:

a community worker signs in, filters the census-focus elders, opens one, sees the reasons of
her categories and the masked ID, reveals the ID with a reason; the auditor then finds that
reveal, with its reason, in the audit log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

PASSWORD = "tanfang-demo"
MASKED_ID = re.compile(r"^\d{6}\*{8}[\dX]{4}$")
FULL_ID = re.compile(r"^\d{17}[\dX]$")


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_load_state()


def test_worker_reveals_an_id_with_a_reason_and_the_auditor_sees_it(
    demo_server: str, phone_page: Any, tmp_path: Path
) -> None:
    page = phone_page
    _sign_in(page, demo_server, "community")
    assert "/elders/" in page.url
    # Chinese by default, readable on a 375-pixel-wide screen without sideways scrolling.
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    page.check("#filter-focus")
    page.click("#filter-submit")
    page.wait_for_load_state()
    rows = page.locator("[data-testid=elder-row]")
    assert rows.count() > 0, "the demo community has census-focus elders"
    assert "focus=" in page.url

    rows.first.locator("[data-testid=elder-link]").click()
    page.wait_for_load_state()
    elder_url = page.url
    reasons = page.locator("[data-testid=category-reason]")
    assert reasons.count() > 0
    assert all(text.strip() for text in reasons.all_inner_texts())
    focus_categories = page.locator(
        "[data-testid=category][data-category=living_alone],"
        "[data-testid=category][data-category=empty_nest],"
        "[data-testid=category][data-category=left_behind]"
    )
    assert focus_categories.count() > 0, "a focus elder is living alone, empty nest or left behind"
    masked = page.inner_text("#id-number-masked").strip()
    assert MASKED_ID.match(masked), masked
    page.screenshot(path=str(tmp_path / "elder-page.png"), full_page=True)

    page.click("[data-testid=reveal-id-number]")
    page.fill("#reveal-id-number-reason", "核对身份，办理高龄津贴")
    page.click("[data-testid=reveal-id-number-submit]")
    page.wait_for_load_state()
    revealed = page.inner_text("#revealed-id-number").strip()
    assert FULL_ID.match(revealed), revealed
    assert revealed[:6] == masked[:6] and revealed[-4:] == masked[-4:]

    page.click("[data-testid=logout]")
    page.wait_for_load_state()
    _sign_in(page, demo_server, "auditor")
    assert "/audit/" in page.url
    entry = page.locator("[data-testid=audit-row][data-action=reveal_identifier]").first
    assert entry.count() == 1
    assert "核对身份，办理高龄津贴" in entry.locator("[data-testid=audit-reason]").inner_text()
    assert "community" in entry.inner_text()
    assert masked in entry.inner_text()
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)

    # The auditor reads the log and nothing else: the elder's page is refused.
    response = page.goto(elder_url)
    assert response is not None and response.status in (403, 404)
