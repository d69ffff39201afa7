"""One Prometheus registry per process, its /metrics endpoint, and label values with a bound.

Each process kind's metrics module (`ingest.metrics`, `analyzer.metrics`, `sinks.metrics`)
registers into `REGISTRY`; `serve(config, kind)` exposes it on that kind's port. The API
process serves its own registry on its own port (`dashboard.health`).

Cardinality: a `camera_id` or `query_id` label takes at most `metrics.max_cameras` /
`metrics.max_queries` distinct values per process (first come, first kept); any later value
is reported as `_other`, and `sightline_metrics_labels_overflow_total` counts how often that
happened. So a per-camera-per-query series family has at most
(max_cameras + 1) × (max_queries + 1) label pairs, whatever the topics carry.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from configs.settings import MetricsConfig

log = logging.getLogger(__name__)
OTHER = "_other"
KINDS = ("ingest", "analyzer", "sink", "rules")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

LABEL_OVERFLOW = Counter(
    "sightline_metrics_labels_overflow",
    "label values reported as `_other` because the label's bound was reached",
    ["label"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "sightline_consumer_lag_messages",
    "messages between this consumer's position and the partition's end, per assigned partition",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)


class BoundedLabel:
    """The first `limit` distinct values pass through; later ones become `_other` (and are counted)."""

    def __init__(self, name: str, limit: int) -> None:
        self.name, self.limit = name, limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        LABEL_OVERFLOW.labels(self.name).inc()
        return OTHER


_defaults = MetricsConfig()
camera_label = BoundedLabel("camera_id", _defaults.max_cameras)
query_label = BoundedLabel("query_id", _defaults.max_queries)


def configure(config: MetricsConfig) -> None:
    """Apply the configured bounds (before the first sample is recorded)."""
    camera_label.limit, query_label.limit = config.max_cameras, config.max_queries


_lag_seen: dict[str, set[tuple[str, str]]] = {}


def set_consumer_lag(group: str, lags: Mapping[tuple[str, int], int]) -> None:
    """The lag of every partition this consumer holds now; partitions it gave away are dropped."""
    now = {(topic, str(p)) for topic, p in lags}
    for topic, part in _lag_seen.get(group, set()) - now:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(group, topic, part)
    for (topic, p), lag in lags.items():
        CONSUMER_LAG.labels(group, topic, str(p)).set(lag)
    _lag_seen[group] = now


def port_for(config: MetricsConfig, kind: str) -> int:
    ports = {
        "ingest": config.ingest_port,
        "analyzer": config.analyzer_port,
        "sink": config.sink_port,
        "rules": config.rules_port,
    }
    return ports[kind]


class MetricsServer:
    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(config: MetricsConfig, kind: str, registry: CollectorRegistry = REGISTRY) -> MetricsServer | None:
    """Start this process's /metrics endpoint if metrics are enabled (prometheus_client's own server)."""
    configure(config)
    if not config.enabled:
        return None
    server, thread = start_http_server(port_for(config, kind), config.host, registry)
    ms = MetricsServer(server, thread)
    log.info("metrics for %s on http://%s:%d/metrics", kind, config.host, ms.port)
    return ms
