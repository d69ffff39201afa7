"""Prometheus metrics of the analyzer, in the process registry (`lifecycle.metrics`).

Engine calls are counted per camera and query (labels bounded by `lifecycle.metrics`), with
their latency as a histogram, tokens and cost; the engine's own totals (retries, errors by
kind) come from `glm45v_engine.accounting.EngineCollector` over the worker's engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from glm45v_engine.accounting import EngineCollector
from glm45v_engine.types import Usage
from lifecycle.metrics import REGISTRY, camera_label, query_label

# VLM calls take from ~50 ms (a cached or tiny model) to tens of seconds (thinking on a busy GPU).
ENGINE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

FRAMES = Counter("sightline_analyzer_frames", "frames consumed", ["camera_id"], registry=REGISTRY)
SKIPPED = Counter(
    "sightline_analyzer_frames_skipped",
    "frames or answers not used, by reason (lag, interval, already_processed, unreadable, no_query)",
    ["camera_id", "reason"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "sightline_analyzer_dead_lettered", "frames sent to the dead-letter topic", registry=REGISTRY
)
CALLS = Counter(
    "sightline_analyzer_engine_calls",
    "engine calls by kind (ground, summarize) and outcome (ok, error, refused)",
    ["camera_id", "query_id", "kind", "outcome"],
    registry=REGISTRY,
)
CALL_SECONDS = Histogram(
    "sightline_analyzer_engine_call_seconds",
    "engine call latency as the analyzer waited for it (retries included)",
    ["camera_id", "query_id", "kind"],
    buckets=ENGINE_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "sightline_analyzer_engine_tokens",
    "engine tokens by direction (in, out)",
    ["camera_id", "query_id", "direction"],
    registry=REGISTRY,
)
COST = Counter(
    "sightline_analyzer_engine_cost",
    "engine cost in the configured price's currency (engine.prices)",
    ["camera_id", "query_id"],
    registry=REGISTRY,
)
BUDGET_LEVEL = Gauge(
    "sightline_analyzer_budget_level",
    "budget degrade level of a query on a camera: 0 normal, 1 longer interval, 2 smaller images, 3 paused",
    ["camera_id", "query_id"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "sightline_analyzer_events",
    "object events produced, by phase",
    ["camera_id", "query_id", "phase"],
    registry=REGISTRY,
)
SUMMARIES = Counter(
    "sightline_analyzer_summaries", "summaries produced", ["camera_id", "query_id"], registry=REGISTRY
)


def call(camera_id: str, query_id: str, kind: str, outcome: str, seconds: float, usage: Usage | None) -> None:
    cam, q = camera_label(camera_id), query_label(query_id)
    CALLS.labels(cam, q, kind, outcome).inc()
    CALL_SECONDS.labels(cam, q, kind).observe(seconds)
    if usage is not None:
        TOKENS.labels(cam, q, "in").inc(usage.tokens_in)
        TOKENS.labels(cam, q, "out").inc(usage.tokens_out)
        COST.labels(cam, q).inc(usage.cost)


def frame(camera_id: str) -> None:
    FRAMES.labels(camera_label(camera_id)).inc()


def skipped(camera_id: str, reason: str) -> None:
    SKIPPED.labels(camera_label(camera_id), reason).inc()


def event(camera_id: str, query_id: str, phase: str) -> None:
    EVENTS.labels(camera_label(camera_id), query_label(query_id), phase).inc()


def summary(camera_id: str, query_id: str) -> None:
    SUMMARIES.labels(camera_label(camera_id), query_label(query_id)).inc()


class _CurrentEngine:
    """The worker's engine totals; one collector per process, whichever engine it holds now."""

    def __init__(self) -> None:
        self.engine: Any = None

    def collect(self) -> Iterator[Any]:
        if self.engine is not None:
            yield from EngineCollector(self.engine).collect()


ENGINE = _CurrentEngine()
REGISTRY.register(ENGINE)


def budget_level(camera_id: str, query_id: str, level: int) -> None:
    BUDGET_LEVEL.labels(camera_label(camera_id), query_label(query_id)).set(level)
