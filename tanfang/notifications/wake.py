"""Waking the outbox workers after a commit, so urgent messages leave in well under a second.

Listeners register here: the in-process worker sets a threading event; the Redis backend
pushes a token the Redis workers block on. With no listener, workers still poll.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

_listeners: list[Callable[[], None]] = []


def on_outbox_wake(listener: Callable[[], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def forget_outbox_wake(listener: Callable[[], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def outbox_wake() -> None:
    # A wake-up is a hint: polling covers a lost one, so a failing listener is ignored.
    for listener in list(_listeners):
        with contextlib.suppress(Exception):
            listener()
