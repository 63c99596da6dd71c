"""One interface for every channel: SMS, WeCom group robot, e-mail, the in-app inbox.

The outbox (``notifications.outbox``) hands a channel a batch of ``Outgoing`` messages
(at most ``max_batch``) under one ``batch_key`` and gets one ``SendResult`` per message.
Every send carries the message's idempotency ``key``. ``lookup`` answers, after a worker died
mid-send, whether the provider already has a message (True), has not (False) or cannot say
(None); a message is sent again only on False or, for a channel that cannot look up, on
None (docs/notifications.md states which channels can).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


@dataclass(frozen=True)
class Outgoing:
    message_id: int
    key: str
    address: str  # decrypted phone, e-mail, WeCom robot key, or the user id for the inbox
    body: str
    urgent: bool = False
    subject: str = ""
    sms_template_code: str = ""
    sms_params: dict[str, Any] = field(default_factory=dict)


class Outcome(StrEnum):
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"  # known to have reached the recipient (inbox)
    RETRY = "retry"  # a transient failure: try this channel again after a backoff
    RATE_LIMITED = "rate_limited"  # the provider refused for rate: retry later, no penalty
    FAILED = "failed"  # permanent for this channel: fall back to the next


@dataclass(frozen=True)
class SendResult:
    key: str
    outcome: Outcome
    provider_id: str = ""
    error: str = ""


class ChannelBackend(Protocol):
    name: str
    max_batch: int
    # Sends per second this channel may make from one worker (0: no limit).
    rate_per_second: float

    def send(self, batch: list[Outgoing], *, batch_key: str) -> list[SendResult]: ...

    def lookup(self, batch: list[Outgoing], *, batch_key: str) -> dict[str, bool | None]: ...
