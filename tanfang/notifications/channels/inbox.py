"""The in-app inbox: the ``Message`` row is itself the inbox item.

"Sending" a message to the inbox only states that it has arrived: the row the outbox holds is
what the recipient's inbox page lists, so every message comes back DELIVERED and ``lookup``
answers True (the database is the truth). The outbox, not this channel, records the state.
"""

from __future__ import annotations

from tanfang.notifications.channels.base import Outcome, Outgoing, SendResult


class Inbox:
    """The inbox channel (``ChannelBackend``)."""

    name = "inbox"
    max_batch = 500
    rate_per_second = 0.0

    def send(self, batch: list[Outgoing], *, batch_key: str) -> list[SendResult]:
        return [SendResult(m.key, Outcome.DELIVERED, provider_id=str(m.message_id)) for m in batch]

    def lookup(self, batch: list[Outgoing], *, batch_key: str) -> dict[str, bool | None]:
        return dict.fromkeys((m.key for m in batch), True)
