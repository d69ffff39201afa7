"""`sightline ingest`: follow the camera registry, run the cameras the ingest group gives this process,
publish frames."""

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
from ingest.ownership import Ownership, group_id
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
    ownership = Ownership(bootstrap, settings.bus, cfg, me, on_revoke=lambda: producer.flush(2.0))
    publisher = KafkaFramePublisher(producer, topics, gate=ownership, worker=me)
    registry = Registry(bootstrap, topics, me)
    manager = CameraManager(settings, publisher, me)
    started = time.monotonic()
    log.info("ingest %s: following %s, in group %s", me, topics.control, group_id(settings.bus, cfg))
    try:
        _heartbeat(publisher, me, "running", manager, started)
        registry.catch_up(stop)
        next_beat = next_status = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:  # for people and dashboards; ownership does not depend on it
                _heartbeat(publisher, me, "running", manager, started)
                next_beat = now + cfg.worker_heartbeat_s
            manager.reconcile(registry.cameras, registry.revisions, ownership.mine(registry.cameras))
            if now >= next_status:
                manager.publish_status()
                next_status = now + cfg.status_interval_s
            registry.poll(200)
    finally:
        manager.stop_all(5.0)  # while still a member: the last frames and markers are ours to send
        try:
            _heartbeat(publisher, me, "stopped", manager, started)
            producer.flush(5.0)
        finally:
            ownership.close()  # leaving hands the slots over in the next round
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
