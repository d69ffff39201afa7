"""A message the database refuses (PostgreSQL: value too long) is dead-lettered; the rest flows on."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from conftest import need, port_open
from sqlalchemy import create_engine, text

from bus.kafka import Producer, make_consumer
from bus.topics import Topics
from configs import Settings
from sightline.testing import messages as samples
from sinks.service import run as run_sink
from sinks.store import EventFilter, Store

pytestmark = pytest.mark.broker
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url() -> Iterator[str]:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not listening on 127.0.0.1:5432")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_refused_message_is_dead_lettered_and_the_rest_is_stored(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings], pg_url: str
) -> None:
    settings = make_settings(
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix, "partitions": 1},
        store={"url": pg_url, "retention_days": 36500},
    )
    topics = Topics.from_config(settings.bus)
    good = samples.track("cam1", "red", "a", 0, 4)
    bad = samples.event("cam1", "red", "b", "start", 7, 0.7, label="x" * 300)  # the label column holds 200
    producer = Producer(kafka_bootstrap)
    for ev in (good[0], bad, *good[1:]):
        producer.send(topics.detections, ev.camera_id, ev)
    producer.flush()
    producer.close()

    stop = threading.Event()
    sink = threading.Thread(target=run_sink, args=(settings, stop), daemon=True)
    sink.start()
    store = Store(pg_url)
    try:
        deadline = time.monotonic() + 20
        while store.counts()["events"] < 3:
            assert time.monotonic() < deadline, store.counts()
            time.sleep(0.1)
        dlq = make_consumer(kafka_bootstrap, [topics.deadletter], None)
        dead: list[dict[str, object]] = []
        deadline = time.monotonic() + 10
        while not dead and time.monotonic() < deadline:
            for batch in dlq.poll(timeout_ms=300).values():
                dead += [json.loads(r.value) for r in batch]
        dlq.close()
    finally:
        stop.set()
        sink.join(15)
    assert {e["event_id"] for e in store.events(EventFilter()).items} == {e.event_id for e in good}
    assert len(dead) == 1 and "store refused it: DataError" in str(dead[0]["reason"])
    assert dead[0]["offset"] == 1
    store.close()
