"""`sightline ingest`: follow the camera registry, run this process's share of cameras, publish frames."""

from __future__ import annotations

import logging
import threading
import time

from bus.contracts import StatusUpdate
from bus.kafka import Producer, ensure_topics, wait_for_broker
from bus.redact import install_log_redaction
from bus.topics import Topics
from configs.settings import Settings
from ingest.manager import CameraManager, KafkaFramePublisher
from ingest.registry import Registry
from lifecycle.process import require_bootstrap, worker_id

log = logging.getLogger(__name__)


def run(settings: Settings, stop: threading.Event) -> int:
    bootstrap = require_bootstrap(settings)
    install_log_redaction()  # camera URLs with passwords pass through this process's log lines
    wait_for_broker(bootstrap)
    topics = Topics.from_config(settings.bus)
    ensure_topics(bootstrap, topics.all(), settings.bus.partitions, settings.bus.replication)
    me = worker_id("ingest", settings.ingest.worker_id)
    cfg = settings.ingest
    producer = Producer(bootstrap, client_id=me, max_request_bytes=settings.bus.max_frame_bytes + 65536)
    publisher = KafkaFramePublisher(producer, topics)
    registry = Registry(bootstrap, topics, me, cfg.worker_ttl_s)
    manager = CameraManager(settings, publisher, me)
    started = time.monotonic()
    log.info("ingest %s: following %s", me, topics.control)
    try:
        _heartbeat(publisher, me, "running", manager, started)
        registry.catch_up(stop)
        next_beat = next_status = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                _heartbeat(publisher, me, "running", manager, started)
                registry.saw(me)
                next_beat = now + cfg.worker_heartbeat_s
            manager.reconcile(registry.cameras, registry.revisions, registry.mine())
            if now >= next_status:
                manager.publish_status()
                next_status = now + cfg.status_interval_s
            registry.poll(200)
    finally:
        manager.stop_all(5.0)
        try:
            _heartbeat(publisher, me, "stopped", manager, started)
            producer.flush(5.0)
        finally:
            producer.close(5.0)
            registry.close()
    log.info("ingest %s: stopped", me)
    return 0


def _heartbeat(
    publisher: KafkaFramePublisher, me: str, state: str, manager: CameraManager, started: float
) -> None:
    running = sorted(cid for cid, w in manager.workers.items() if w.alive)
    publisher.status(
        StatusUpdate(
            component="ingest",
            id=me,
            worker=me,
            state="running" if state == "running" else "stopped",
            reason=",".join(running)[:2000],
            counters={"cameras": len(running), "uptime_s": round(time.monotonic() - started, 1)},
        )
    )
