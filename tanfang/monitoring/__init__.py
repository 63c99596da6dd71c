"""Monitoring: meter and device data, anomaly detection and (later) alerts with escalation."""
