"""Messages to a WeCom (企业微信) group through the group's robot webhook.

A robot is addressed by its key (``Outgoing.address``, the group's decrypted ``key_cipher``):
``POST {WECOM_URL}?key=<key>`` with ``{"msgtype": "text", "text": {"content": body}}``
(content cut to WeCom's 2,048 bytes). The answer's ``errcode``: 0 SENT; 45009 (frequency
limit) RATE_LIMITED; -1 (system busy) RETRY; any other (93000 invalid key, 40008 bad
message ...) FAILED, so the outbox falls back to the next channel. No answer, or a 5xx: RETRY.

Rate: WeCom lets one robot post 20 messages a minute. That limit is per robot, not per
channel, so ``rate_per_second`` is 0 (the outbox does not pace the channel as a whole) and
the channel keeps a sliding one-minute window per robot key in the process: a message beyond
20 in the window comes back RATE_LIMITED without a request. Several worker processes each
keep their own window; WeCom's own 45009 then catches the excess.

Lookup: WeCom has no API to ask whether a post arrived, so ``lookup`` answers None and the
outbox sends an in-doubt WeCom message again: a group may, rarely, see a message twice after
a worker died mid-send. The text is the same, so the group reads it as a repeat.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from tanfang.notifications.channels.base import Outcome, Outgoing, SendResult

PER_ROBOT_PER_MINUTE = 20
MAX_CONTENT_BYTES = 2048
TIMEOUT_S = 5.0
RATE_LIMITED_CODE = 45009
BUSY_CODE = -1


def cut_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


class RobotWindow:
    """At most ``per_minute`` posts per robot key in any 60 seconds, in this process."""

    def __init__(self, per_minute: int = PER_ROBOT_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._sent: dict[str, collections.deque[float]] = {}

    def take(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            stamps = self._sent.setdefault(key, collections.deque())
            while stamps and stamps[0] <= now - 60:
                stamps.popleft()
            if len(stamps) >= self.per_minute:
                return False
            stamps.append(now)
            return True


class WeComRobot:
    """The WeCom group channel (``ChannelBackend``)."""

    name = "wecom"
    max_batch = 20
    rate_per_second = 0.0

    def __init__(self, *, url: str, per_robot_per_minute: int = PER_ROBOT_PER_MINUTE) -> None:
        self.url = url
        self.window = RobotWindow(per_robot_per_minute)

    def send(self, batch: list[Outgoing], *, batch_key: str) -> list[SendResult]:
        return [self._send_one(message) for message in batch]

    def lookup(self, batch: list[Outgoing], *, batch_key: str) -> dict[str, bool | None]:
        return dict.fromkeys((m.key for m in batch), None)

    def _send_one(self, message: Outgoing) -> SendResult:
        if not message.address:
            return SendResult(message.key, Outcome.FAILED, error="no robot key")
        if not self.window.take(message.address):
            return SendResult(message.key, Outcome.RATE_LIMITED, error="20 a minute per robot")
        payload = {
            "msgtype": "text",
            "text": {"content": cut_utf8(message.body, MAX_CONTENT_BYTES)},
        }
        request = urllib.request.Request(
            f"{self.url}?{urllib.parse.urlencode({'key': message.address})}",
            data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            outcome = Outcome.RETRY if exc.code >= 500 or exc.code == 429 else Outcome.FAILED
            return SendResult(message.key, outcome, error=f"HTTP {exc.code}")
        except (OSError, ValueError) as exc:
            return SendResult(
                message.key, Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"[:300]
            )
        code = answer.get("errcode") if isinstance(answer, dict) else None
        error = f"{code}: {answer.get('errmsg', '') if isinstance(answer, dict) else ''}"[:300]
        if code == 0:
            return SendResult(message.key, Outcome.SENT)
        if code == RATE_LIMITED_CODE:
            return SendResult(message.key, Outcome.RATE_LIMITED, error=error)
        if code == BUSY_CODE:
            return SendResult(message.key, Outcome.RETRY, error=error)
        return SendResult(message.key, Outcome.FAILED, error=error)
