"""Care actions as a small state machine per kind, and their default time limits.

A visit that finds something, with the elder's consent, opens care actions of three kinds
(the plan's 二.(四)): tell the elder about a benefit and help apply; remind about a hazard and
help remove it; connect a need to a service. Each kind walks its own steps; the last steps
close the action. These are plain data so the web page, the API and the tests agree.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum


class CareKind(StrEnum):
    BENEFIT = "benefit"
    HAZARD = "hazard"
    SERVICE = "service"


class CareState(StrEnum):
    TO_INFORM = "to_inform"
    INFORMED = "informed"
    APPLYING = "applying"
    GRANTED = "granted"
    NOT_GRANTED = "not_granted"
    TO_REMIND = "to_remind"
    REMINDED = "reminded"
    REMOVING = "removing"
    REMOVED = "removed"
    TO_CONNECT = "to_connect"
    CONNECTED = "connected"
    SERVED = "served"
    DECLINED = "declined"


FIRST_STATE: dict[CareKind, CareState] = {
    CareKind.BENEFIT: CareState.TO_INFORM,
    CareKind.HAZARD: CareState.TO_REMIND,
    CareKind.SERVICE: CareState.TO_CONNECT,
}

TRANSITIONS: dict[CareKind, dict[CareState, tuple[CareState, ...]]] = {
    CareKind.BENEFIT: {
        CareState.TO_INFORM: (CareState.INFORMED, CareState.DECLINED),
        CareState.INFORMED: (CareState.APPLYING, CareState.DECLINED),
        CareState.APPLYING: (CareState.GRANTED, CareState.NOT_GRANTED),
    },
    CareKind.HAZARD: {
        # Removed on the spot (a hose replaced during the visit) closes it at once.
        CareState.TO_REMIND: (
            CareState.REMINDED,
            CareState.REMOVING,
            CareState.REMOVED,
            CareState.DECLINED,
        ),
        CareState.REMINDED: (CareState.REMOVING, CareState.REMOVED, CareState.DECLINED),
        CareState.REMOVING: (CareState.REMOVED, CareState.DECLINED),
    },
    CareKind.SERVICE: {
        CareState.TO_CONNECT: (CareState.CONNECTED, CareState.DECLINED),
        CareState.CONNECTED: (CareState.SERVED, CareState.DECLINED),
    },
}

CLOSED_STATES = frozenset(
    {
        CareState.GRANTED,
        CareState.NOT_GRANTED,
        CareState.REMOVED,
        CareState.SERVED,
        CareState.DECLINED,
    }
)

# Hazards that can kill within days get days, the rest weeks.
URGENT_HAZARDS = frozenset({"gas", "electricity"})


def next_states(kind: str, state: str) -> tuple[CareState, ...]:
    """The states an action of ``kind`` may move to from ``state`` (none once closed)."""
    return TRANSITIONS[CareKind(kind)].get(CareState(state), ())


def can_move(kind: str, state: str, to: str) -> bool:
    return to in next_states(kind, state)


def is_closed(state: str) -> bool:
    return state in CLOSED_STATES


def default_due(kind: str, subject: str, opened_on: dt.date) -> dt.date:
    """When an action must be closed: urgent hazards in 3 days, other hazards and service
    needs in 14, benefits (which wait for an office) in 30."""
    if kind == CareKind.HAZARD:
        days = 3 if subject in URGENT_HAZARDS else 14
    elif kind == CareKind.SERVICE:
        days = 14
    else:
        days = 30
    return opened_on + dt.timedelta(days=days)
