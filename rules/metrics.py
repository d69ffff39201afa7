"""Prometheus metrics of the rules process, in the process registry (`lifecycle.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

from lifecycle.metrics import REGISTRY, camera_label

EVENTS = Counter("sightline_rules_events", "object events evaluated against the rules", registry=REGISTRY)
ALERTS = Counter(
    "sightline_rules_alerts",
    "alerts raised, by condition and severity (rule ids are the operator's, so not a label)",
    ["camera_id", "condition", "severity"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "sightline_rules_dead_lettered", "detections sent to the dead-letter topic", registry=REGISTRY
)


def alert(camera_id: str, condition: str, severity: str) -> None:
    ALERTS.labels(camera_label(camera_id), condition, severity).inc()
