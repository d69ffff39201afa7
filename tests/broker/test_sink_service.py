"""The sink process against a real Tansu broker: events land in the store, poison is dead-lettered."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from bus.kafka import Producer, make_consumer
from bus.topics import Topics
from configs import Settings
from sightline.testing import messages as samples
from sinks.service import run
from sinks.store import EventFilter, Store

pytestmark = pytest.mark.broker


def _wait(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


class SinkThread:
    def __init__(self, settings: Settings) -> None:
        self.stop = threading.Event()
        self.rc: int | None = None
        self.thread = threading.Thread(target=self._run, args=(settings,), daemon=True)
        self.thread.start()

    def _run(self, settings: Settings) -> None:
        self.rc = run(settings, self.stop)

    def close(self) -> int | None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()
        return self.rc


def test_sink_stores_events_and_dead_letters_poison(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix, "partitions": 2},
        store={"retention_days": 36500},  # the samples are dated 2026-01-01: keep them
    )
    topics = Topics.from_config(settings.bus)
    events = [*samples.track("cam1", "red", "a", 0, 4), *samples.track("cam2", "red", "b", 1, 3)]
    producer = Producer(kafka_bootstrap)
    sink = SinkThread(settings)
    try:
        for ev in events[:3]:
            producer.send(topics.detections, ev.camera_id, ev)
        producer.send_raw(topics.detections, b"cam1", b'{"schema": "sightline.object_event/1", "phase": "?"}')
        for ev in events[3:]:
            producer.send(topics.detections, ev.camera_id, ev)
        producer.send(topics.summaries, "cam1", samples.summary("cam1"))
        producer.send(topics.status, "cam1", samples.status("cam1"))
        producer.flush()
        store = Store(settings.store_url)
        _wait(lambda: store.counts()["events"] == 6 and store.counts()["summaries"] == 1)
        assert store.counts()["status"] >= 1
        items = store.events(EventFilter(), limit=50).items
        assert {e["event_id"] for e in items} == {e.event_id for e in events}
    finally:
        assert sink.close() == 0
        producer.close()

    dlq = make_consumer(kafka_bootstrap, [topics.deadletter], None)
    try:
        dead = [json.loads(r.value) for batch in _poll_all(dlq) for r in batch]
    finally:
        dlq.close()
    assert len(dead) == 1 and dead[0]["topic"] == topics.detections
    assert "not a valid sightline.object_event/1" in dead[0]["reason"]

    # A new consumer group replays the whole topic: the store must not change.
    before = (store.counts(), store.events(EventFilter(), limit=50).items)
    replay = SinkThread(
        settings.model_copy(update={"store": settings.store.model_copy(update={"group_id": "g2"})})
    )
    try:
        time.sleep(0.5)
        _wait(lambda: _committed(kafka_bootstrap, "g2", topics.detections) >= 7)
    finally:
        assert replay.close() == 0
    after = (store.counts(), store.events(EventFilter(), limit=50).items)
    assert before[1] == after[1]
    assert {k: v for k, v in before[0].items() if k != "status"} == {
        k: v for k, v in after[0].items() if k != "status"
    }
    store.close()


def _poll_all(consumer: object, timeout: float = 10.0) -> list[list[object]]:
    out: list[list[object]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = consumer.poll(timeout_ms=300)  # type: ignore[attr-defined]
        if got:
            out.extend(got.values())
            break
    return out


def _committed(bootstrap: str, group: str, topic: str) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
