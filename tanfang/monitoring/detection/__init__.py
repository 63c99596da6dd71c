"""Detection core of the monitoring issue: pure functions over meter readings, no ORM.

``engine.run`` / ``engine.open_at`` / ``engine.detect_meter`` are the entry points;
docs/detection.md describes the rules, the replay semantics and the evaluation.
"""
