"""Prometheus metrics of ingest, in the process registry (`lifecycle.metrics`), served on ingest's port.

Every `camera_id` label value passes through `camera_label`, so the series stay bounded
(`metrics.max_cameras`, then `_other`)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

from lifecycle.metrics import OTHER, REGISTRY, camera_label

FRAMES_DECODED = Counter(
    "sightline_ingest_frames_decoded", "frames decoded", ["camera_id"], registry=REGISTRY
)
FRAMES_PUBLISHED = Counter(
    "sightline_ingest_frames_published",
    "frames published to the frames topic",
    ["camera_id"],
    registry=REGISTRY,
)
FRAMES_GATED = Counter(
    "sightline_ingest_frames_gated", "sampled frames the gate held back", ["camera_id"], registry=REGISTRY
)
DROPS = Counter(
    "sightline_ingest_drops", "frames dropped, by reason", ["camera_id", "reason"], registry=REGISTRY
)
RECONNECTS = Counter(
    "sightline_ingest_reconnects", "source reconnect attempts", ["camera_id"], registry=REGISTRY
)
BYTES_PUBLISHED = Counter(
    "sightline_ingest_published_bytes", "JPEG bytes published", ["camera_id"], registry=REGISTRY
)
FPS_IN = Gauge("sightline_ingest_fps_in", "decoded frames per second", ["camera_id"], registry=REGISTRY)
FPS_OUT = Gauge("sightline_ingest_fps_out", "published frames per second", ["camera_id"], registry=REGISTRY)
LAG = Gauge(
    "sightline_ingest_lag_seconds",
    "capture to publish delay of the last frame",
    ["camera_id"],
    registry=REGISTRY,
)
STATE = Gauge(
    "sightline_ingest_camera_state",
    "1 for the camera's current state",
    ["camera_id", "state"],
    registry=REGISTRY,
)
CAMERAS = Gauge("sightline_ingest_cameras", "cameras run by this process", registry=REGISTRY)

CAMERA_STATES = ("starting", "streaming", "reconnecting", "stopped", "failed")


def cam(camera_id: str) -> str:
    return camera_label(camera_id)


def set_state(camera_id: str, state: str) -> None:
    camera_id = cam(camera_id)
    for s in CAMERA_STATES:
        STATE.labels(camera_id, s).set(1.0 if s == state else 0.0)


def forget(camera_id: str) -> None:
    """Drop a removed camera's gauge series so /metrics does not list ghosts."""
    camera_id = cam(camera_id)
    if camera_id == OTHER:  # other cameras still report under `_other`
        return
    for gauge in (FPS_IN, FPS_OUT, LAG):
        with contextlib.suppress(KeyError):
            gauge.remove(camera_id)
    for s in CAMERA_STATES:
        with contextlib.suppress(KeyError):
            STATE.remove(camera_id, s)
