"""What the browser flows do again and again: sign in as a demo account, check that a page
fits a phone's width, and press an SOS button the way the device vendor's system reports it
(a real HTTP push with the demo vendor's published token, docs/demo.md)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
import uuid
from typing import Any

PASSWORD = "tanfang-demo"
DEVICE_TOKEN = "tanfang-demo-devices"


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_load_state()


def fits_the_phone(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, page.url


def press_sos(base: str, device_id: str) -> dict[str, Any]:
    """The device vendor's system reports an SOS press, as a real push."""
    body = json.dumps(
        {
            "device_id": device_id,
            "kind": "sos",
            "ts": dt.datetime.now(dt.UTC).isoformat(),
            "message_id": f"browser-{uuid.uuid4()}",
        }
    ).encode()
    request = urllib.request.Request(
        base + "/api/v1/ingest/device-events/",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Partner {DEVICE_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201, response.status
        answer: dict[str, Any] = json.loads(response.read())
    return answer
