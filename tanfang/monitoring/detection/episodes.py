"""One episode, one alert: conditions over ticks -> raised and resolved events.

Per meter and rule, ticks carry an event: *set* where the condition holds, *reset* where the
rule's clearing signal holds and the condition does not (for inactivity: activity seen
again), nothing otherwise. An episode is open from a set until the next reset, so a condition
that flickers (a routine threshold that rises at night) never raises a second alert, and an
alert resolves only when activity resumes. Vectorised: the state at a tick is the last event
at or before it (a running maximum of event positions).

The person rules of a meter (inactivity, missed_routine, low_usage) share one episode: the
home is quiet, however many rules agree. The alert is raised by the first rule to see it
(ties: the order of the rule book), names the others that agree in its evidence, and resolves
when every one of them has resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tanfang.monitoring.detection.rules import RuleOutput


@dataclass
class Alert:
    meter: int  # row in the batch's meter table
    rule: str
    kind: str
    severity: str
    started_at: int | None  # epoch s
    detected_at: int
    resolved_at: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def open_state(cond: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """(M, T) bool: is an episode open at each tick.

    The state is the last event at or before the tick; a tick where the condition holds is a
    set whatever the clearing signal says, so the last event is a set exactly when the
    condition holds there.
    """
    t = cond.shape[1]
    pos = np.where(cond | clear, np.arange(t, dtype=np.int64)[None, :], -1)
    np.maximum.accumulate(pos, axis=1, out=pos)
    opened = pos >= 0
    np.maximum(pos, 0, out=pos)
    pos += (np.arange(cond.shape[0], dtype=np.int64) * t)[:, None]
    opened &= cond.reshape(-1).take(pos)
    return opened


def alerts(out: RuleOutput, ticks: np.ndarray) -> list[Alert]:
    """Every episode of one rule: raised at its first open tick, resolved at its first closed."""
    is_open = open_state(out.cond, out.clear)
    before = np.zeros((is_open.shape[0], 1), dtype=bool)
    prev = np.concatenate((before, is_open[:, :-1]), axis=1)
    raised_m, raised_k = np.nonzero(is_open & ~prev)
    if not len(raised_m):
        return []
    closed_m, closed_k = np.nonzero(~is_open & prev)
    closing: dict[int, list[int]] = {}
    for m, k in zip(closed_m.tolist(), closed_k.tolist(), strict=True):
        closing.setdefault(m, []).append(k)
    result = []
    for m, k in zip(raised_m.tolist(), raised_k.tolist(), strict=True):
        later = [c for c in closing.get(m, []) if c > k]
        started = int(out.started[m, k])
        result.append(
            Alert(
                meter=m,
                rule=out.rule.name,
                kind=out.rule.kind,
                severity=out.rule.severity,
                started_at=started if started >= 0 else None,
                detected_at=int(ticks[k]),
                resolved_at=int(ticks[later[0]]) if later else None,
                evidence=out.evidence(m, k),
            )
        )
    return result


def merged_alerts(outs: list[RuleOutput], ticks: np.ndarray) -> list[Alert]:
    """One episode per meter across several rules (see the module's docstring)."""
    if not outs:
        return []
    if len(outs) == 1:
        return alerts(outs[0], ticks)
    states = [open_state(o.cond, o.clear) for o in outs]  # R x (M, T)
    is_open = states[0].copy()
    for state in states[1:]:
        is_open |= state
    prev = np.concatenate((np.zeros((is_open.shape[0], 1), dtype=bool), is_open[:, :-1]), axis=1)
    raised_m, raised_k = np.nonzero(is_open & ~prev)
    if not len(raised_m):
        return []
    closed_m, closed_k = np.nonzero(~is_open & prev)
    closing: dict[int, list[int]] = {}
    for m, k in zip(closed_m.tolist(), closed_k.tolist(), strict=True):
        closing.setdefault(m, []).append(k)
    result = []
    for m, k in zip(raised_m.tolist(), raised_k.tolist(), strict=True):
        firing = [r for r in range(len(outs)) if states[r][m, k]]
        lead = outs[firing[0]]
        later = [c for c in closing.get(m, []) if c > k]
        started = int(lead.started[m, k])
        evidence = lead.evidence(m, k)
        if len(firing) > 1:
            evidence["also"] = [outs[r].rule.name for r in firing[1:]]
        result.append(
            Alert(
                meter=m,
                rule=lead.rule.name,
                kind=lead.rule.kind,
                severity=lead.rule.severity,
                started_at=started if started >= 0 else None,
                detected_at=int(ticks[k]),
                resolved_at=int(ticks[later[0]]) if later else None,
                evidence=evidence,
            )
        )
    return result
