"""Prometheus metrics of the sink, in the process registry (`lifecycle.metrics`).

Frame → stored is measured for what is stored fresh (a redelivered message changes nothing
and is not timed again): for a `start` or `update` event from its frame's capture time
(`wall_ts`), for a summary from the capture time of its window's last frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client import Counter, Histogram

from bus.contracts import (
    Alert,
    ControlMessage,
    Envelope,
    ObjectEvent,
    RecordedSegment,
    StatusUpdate,
    Summary,
    utcnow,
)
from lifecycle.metrics import REGISTRY, camera_label, query_label

# Ingest → broker → analyzer (one engine call or a summary window's wait) → broker → store.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)

STORED = Counter(
    "sightline_sink_messages_stored",
    "messages newly written to the store, by kind (event, summary, status, control, segment, alert)",
    ["kind"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "sightline_sink_events_stored",
    "object events newly stored, by phase",
    ["camera_id", "query_id", "phase"],
    registry=REGISTRY,
)
FRAME_TO_STORED = Histogram(
    "sightline_sink_frame_to_stored_seconds",
    "capture time of the frame to the moment its event or summary is in the store",
    ["kind"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "sightline_sink_dead_lettered", "messages sent to the dead-letter topic", registry=REGISTRY
)
STORE_ERRORS = Counter(
    "sightline_sink_store_errors",
    "store failures by kind (unavailable: retried; rejected: data refused, isolated)",
    ["kind"],
    registry=REGISTRY,
)


def _kind(msg: Envelope) -> str:
    if isinstance(msg, ObjectEvent):
        return "event"
    if isinstance(msg, Summary):
        return "summary"
    if isinstance(msg, StatusUpdate):
        return "status"
    if isinstance(msg, RecordedSegment):
        return "segment"
    if isinstance(msg, Alert):
        return "alert"
    return "control" if isinstance(msg, ControlMessage) else "other"


def stored(fresh: Sequence[Envelope], now: datetime | None = None) -> None:
    now = now or utcnow()
    for msg in fresh:
        STORED.labels(_kind(msg)).inc()
        if isinstance(msg, ObjectEvent):
            EVENTS.labels(camera_label(msg.camera_id), query_label(msg.query_id), msg.phase).inc()
            if msg.phase != "end":  # an end's wall_ts is the last sighting, not a frame just seen
                FRAME_TO_STORED.labels("event").observe(max(0.0, (now - msg.wall_ts).total_seconds()))
        elif isinstance(msg, Summary):
            FRAME_TO_STORED.labels("summary").observe(max(0.0, (now - msg.window_end_wall).total_seconds()))
