"""Replay through a Kafka broker: the real `ingest` and `analyzer` services, in threads, on private topics.

The run is done when the analyzer group has committed every frame the camera published
plus its end-of-stream marker; by then every output was produced (outputs are flushed
before commits), so the detections and summaries topics can be read to the end.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.structs import TopicPartition

from analyzer import service as analyzer_service
from bus.contracts import CameraSpec, ControlMessage, ObjectEvent, QuerySpec, StatusUpdate, Summary
from bus.kafka import Producer, decode, ensure_topics, make_consumer
from bus.topics import Topics
from configs.settings import Settings
from ingest import service as ingest_service
from sightline.replay.run import ReplayResult, canonical_order, check_complete

IDLE_S = 1.0


def run_replay_broker(
    video: Path,
    settings: Settings,
    queries: Sequence[QuerySpec],
    *,
    bootstrap: str,
    camera_id: str = "replay",
    progress: bool = False,
    timeout_s: float = 3600,
) -> ReplayResult:
    t0 = time.perf_counter()
    prefix = f"replay-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(
        update={
            "bus": settings.bus.model_copy(update={"bootstrap": bootstrap, "topic_prefix": prefix}),
            "analyzer": settings.analyzer.model_copy(update={"group_id": f"{prefix}-analyzer"}),
        }
    )
    topics = Topics.from_config(settings.bus)
    ensure_topics(bootstrap, topics.all(), settings.bus.partitions, settings.bus.replication)
    stop = threading.Event()
    threads = [
        threading.Thread(target=fn, args=(settings, stop), name=name, daemon=True)
        for name, fn in (("ingest", ingest_service.run), ("analyzer", analyzer_service.run))
    ]
    for t in threads:
        t.start()
    _register(bootstrap, topics, CameraSpec(id=camera_id, url=str(video), realtime=False), queries)
    result = ReplayResult()
    try:
        cam = _wait_camera_done(bootstrap, topics, camera_id, timeout_s, progress)
        result.camera_state, result.camera_reason = cam.state, cam.reason
        published = int(cam.counters.get("published", 0))
        result.frames = published
        result.camera_counters = {k: int(v) for k, v in cam.counters.items()}
        check_complete(result.camera_counters, published)
        if published:
            _wait_committed(bootstrap, settings.analyzer.group_id, topics.frames, published + 1, timeout_s)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    records, analyzer = _read_outputs(bootstrap, topics)
    result.records = canonical_order(records)
    if analyzer is not None:
        c = analyzer.counters
        result.engine_calls = int(c.get("engine_calls_total", 0))
        result.tokens_in, result.tokens_out = (
            int(c.get("engine_tokens_in", 0)),
            int(c.get("engine_tokens_out", 0)),
        )
        result.cost = c.get("engine_cost", 0.0)
    events = result.events
    if events:
        result.engine, result.model = events[0].engine, events[0].model
    result.wall_s = time.perf_counter() - t0
    return result


def _register(bootstrap: str, topics: Topics, camera: CameraSpec, queries: Sequence[QuerySpec]) -> None:
    producer = Producer(bootstrap, client_id="sightline-replay")
    try:
        for q in queries:
            msg = ControlMessage(op="upsert", kind="query", id=q.id, query=q)
            producer.send(topics.control, msg.key, msg)
        msg = ControlMessage(op="upsert", kind="camera", id=camera.id, camera=camera)
        producer.send(topics.control, msg.key, msg)
        producer.flush()
    finally:
        producer.close()


def _wait_camera_done(
    bootstrap: str, topics: Topics, camera_id: str, timeout_s: float, progress: bool
) -> StatusUpdate:
    consumer = make_consumer(bootstrap, [topics.status], None, client_id="sightline-replay-status")
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                for r in records:
                    st = decode(r, StatusUpdate)
                    if st.component == "camera" and st.id == camera_id:
                        if progress:
                            print(
                                f"\r{camera_id}: {st.state} {int(st.counters.get('published', 0))} frames",
                                end="",
                                file=sys.stderr,
                            )
                        if st.state in ("stopped", "failed"):
                            if progress:
                                print(file=sys.stderr)
                            return st
    finally:
        consumer.close()
    raise TimeoutError(f"the replay camera did not finish within {timeout_s:.0f}s")


def _wait_committed(bootstrap: str, group: str, topic: str, expected: int, timeout_s: float) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sightline-replay-admin")
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            offsets = admin.list_group_offsets(group)
            offsets = offsets.get(group, offsets)  # kafka-python 3 answers {group: {tp: offset}}
            done = sum(
                om.offset
                for tp, om in offsets.items()
                if isinstance(tp, TopicPartition) and tp.topic == topic and om.offset >= 0
            )
            if done >= expected:
                return
            time.sleep(0.2)
    finally:
        admin.close()
    raise TimeoutError(f"the analyzer did not finish the replay within {timeout_s:.0f}s")


def _read_outputs(bootstrap: str, topics: Topics) -> tuple[list[ObjectEvent | Summary], StatusUpdate | None]:
    consumer = make_consumer(
        bootstrap,
        [topics.detections, topics.summaries, topics.status],
        None,
        client_id="sightline-replay-read",
    )
    records: list[ObjectEvent | Summary] = []
    analyzer: StatusUpdate | None = None
    last = time.monotonic()
    try:
        while time.monotonic() - last < IDLE_S:
            batch = consumer.poll(timeout_ms=200)
            for tp, recs in batch.items():
                for r in recs:
                    if tp.topic == topics.detections:
                        records.append(decode(r, ObjectEvent))
                    elif tp.topic == topics.summaries:
                        records.append(decode(r, Summary))
                    else:
                        st = decode(r, StatusUpdate)
                        if st.component == "analyzer":
                            analyzer = st
            if batch:
                last = time.monotonic()
    finally:
        consumer.close()
    unique = {
        (type(r).__name__, r.event_id if isinstance(r, ObjectEvent) else r.summary_id): r for r in records
    }
    return list(unique.values()), analyzer
