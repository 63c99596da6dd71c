"""Device events (SOS button, fall detector, smoke or gas detector): raised at once.

A device reading with a value above 0 is an event at its ts; a reading of 0 clears it. The
alert is raised at the first tick at or after the event (device messages do not wait for the
meters' arrival lag) and resolves at the first tick at or after the clearing reading, or after
the rule's ``hold_hours``. Later issues add acknowledgement and escalation on top.
"""

from __future__ import annotations

import numpy as np

from tanfang.monitoring.detection.config import RuleSet
from tanfang.monitoring.detection.episodes import Alert
from tanfang.monitoring.detection.tables import MeterTable, Readings


def device_alerts(
    meters: MeterTable, readings: Readings, rules: RuleSet, ticks: np.ndarray
) -> list[Alert]:
    found: list[Alert] = []
    specs = rules.of_kind("device")
    if not specs or not len(ticks) or not len(readings):
        return found
    rule = specs[0]
    hold = int(float(rule.params["hold_hours"]) * 3600)
    order = np.lexsort((readings.ts, readings.meter))
    meter, ts, value = readings.meter[order], readings.ts[order], readings.value[order]
    for i in range(len(ts)):
        if not value[i] > 0 or ts[i] > ticks[-1]:
            continue
        k = int(np.searchsorted(ticks, ts[i], side="left"))
        if k >= len(ticks):
            continue
        same = (meter == meter[i]) & (ts > ts[i]) & (value == 0)
        clear_at = int(ts[same][0]) if same.any() else int(ts[i]) + hold
        clear_at = min(clear_at, int(ts[i]) + hold)
        kc = int(np.searchsorted(ticks, clear_at, side="left"))
        found.append(
            Alert(
                meter=int(meter[i]),
                rule=rule.name,
                kind="device",
                severity=rule.severity,
                started_at=int(ts[i]),
                detected_at=int(ticks[k]),
                resolved_at=int(ticks[kc]) if kc < len(ticks) else None,
                evidence={
                    "device_kind": meters.device_kind[int(meter[i])],
                    "value": float(value[i]),
                },
            )
        )
    return found
