"""Poison messages on every consumed topic, against the real services on a Tansu broker.

One stack run per module (ingest, analyzer and sink `run(settings, stop)` in threads on a private
topic prefix): every poison message below is produced between good ones, each under its own key.
Then each case checks its dead letter (topic, reason), and the stack checks that every consumer
went on — the good messages after the poison were processed and every offset was committed.

Control messages are the exception by design: ingest and the analyzer read the whole control
topic without a group (every process is a reader), so they skip a bad one with a warning; the
sink, the one group consumer of that topic, dead-letters it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from kafka import KafkaAdminClient
from kafka.structs import TopicPartition

from analyzer import service as analyzer_service
from bus.contracts import CameraSpec, ControlMessage, EndOfStream, FrameMeta, QuerySpec, StatusUpdate
from bus.kafka import (
    META_HEADER,
    SCHEMA_HEADER,
    PoisonMessage,
    Producer,
    decode,
    ensure_topics,
    make_consumer,
)
from bus.topics import Topics
from configs import Settings, load_settings
from ingest import service as ingest_service
from sightline.testing import messages as samples
from sinks import service as sink_service
from sinks.store import EventFilter, Store

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

GOOD_JPEG = cv2.imencode(".jpg", np.full((90, 160, 3), 128, np.uint8))[1].tobytes()
FRAME = SCHEMA_HEADER, FrameMeta.SCHEMA.encode()


def _meta(**over: Any) -> bytes:
    fields: dict[str, Any] = {
        "camera_id": "cam",
        "frame_id": 0,
        "source_session": "s",
        "pts_s": 0.0,
        "wall_ts": "2026-01-01T00:00:00Z",
        "width": 160,
        "height": 90,
        "encoded_width": 160,
        "encoded_height": 90,
        "live": False,
        **over,
    }
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


def _bomb_jpeg() -> bytes:
    """A real JPEG whose frame header claims 60000×60000 pixels (10.8 GB as BGR)."""
    data = bytearray(GOOD_JPEG)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") * 2
    return bytes(data)


@dataclass(frozen=True)
class Poison:
    id: str  # also the record key, to find its dead letter
    topic: str  # kind: frames | detections | summaries | status | control
    value: bytes | None
    reason: str  # fragment of the dead letter's reason
    headers: tuple[tuple[str, bytes], ...] = field(default=())


def meta_h(**over: Any) -> tuple[tuple[str, bytes], ...]:
    """Headers of a frame message with this metadata."""
    return (FRAME, (META_HEADER, _meta(**over)))


PNG = cv2.imencode(".png", np.zeros((9, 16, 3), np.uint8))[1].tobytes()
HEADER_ONLY = GOOD_JPEG[: GOOD_JPEG.index(b"\xff\xda") + 12]
BOMB = {"width": 60000, "height": 60000, "encoded_width": 60000, "encoded_height": 60000}
NAN_META = _meta().replace(b'"pts_s": 0.0', b'"pts_s": NaN')
EOS_BAD = ((SCHEMA_HEADER, EndOfStream.SCHEMA.encode()), (META_HEADER, b"{}"))
NUL_CAMERA = {
    "op": "upsert",
    "kind": "camera",
    "id": "c9",
    "camera": {"id": "c9", "url": "/x.mp4", "name": "a\0b"},
}
ID_MISMATCH = {"op": "upsert", "kind": "query", "id": "q9", "query": {"id": "other", "text": "x"}}
NOT_EVENT = "not a valid sightline.object_event/1"
NOT_SUMMARY = "not a valid sightline.summary/1"
NOT_CONTROL = "not a valid sightline.control/1"
EV = samples.event("cam1", "red", "z", "start", 1, 0.5).model_dump(mode="json", by_alias=True)
POISON = [
    # frames topic → analyzer
    Poison("frame-without-meta-header", "frames", GOOD_JPEG, "without a sightline-meta header", (FRAME,)),
    Poison(
        "frame-meta-not-json", "frames", GOOD_JPEG, "bad frame metadata", (FRAME, (META_HEADER, b"{oops"))
    ),
    Poison(
        "frame-meta-wrong-schema",
        "frames",
        GOOD_JPEG,
        "bad frame metadata",
        meta_h(schema="sightline.summary/1"),
    ),
    Poison("frame-meta-NaN-pts", "frames", GOOD_JPEG, "bad frame metadata", (FRAME, (META_HEADER, NAN_META))),
    Poison("frame-meta-zero-width", "frames", GOOD_JPEG, "bad frame metadata", meta_h(width=0)),
    Poison("frame-meta-bad-camera-id", "frames", GOOD_JPEG, "bad frame metadata", meta_h(camera_id="../x")),
    Poison("frame-payload-png", "frames", PNG, "not a JPEG", meta_h()),
    Poison("frame-payload-empty", "frames", b"", "not a JPEG", meta_h()),
    Poison(
        "frame-jpeg-magic-then-garbage",
        "frames",
        b"\xff\xd8" + bytes(range(256)) * 40,
        "not a readable JPEG",
        meta_h(),
    ),
    Poison("frame-jpeg-header-only", "frames", HEADER_ONLY, "does not decode", meta_h()),
    Poison(
        "frame-size-disagrees-with-meta",
        "frames",
        GOOD_JPEG,
        "metadata says 640x360",
        meta_h(encoded_width=640, encoded_height=360),
    ),
    Poison("frame-decompression-bomb", "frames", _bomb_jpeg(), "out of range", meta_h(**BOMB)),
    Poison(
        "frame-huge-payload", "frames", GOOD_JPEG + b"\x00" * 1_200_000, "over bus.max_frame_bytes", meta_h()
    ),
    Poison("end-of-stream-bad-marker", "frames", b"", "bad end-of-stream marker", EOS_BAD),
    # detections / summaries / status / control → sink
    Poison(
        "event-truncated-json",
        "detections",
        b'{"schema": "sightline.object_event/1", "event_id": "x',
        NOT_EVENT,
    ),
    Poison(
        "event-wrong-schema",
        "detections",
        json.dumps({**EV, "schema": "sightline.object_event/2"}).encode(),
        "not a valid",
    ),
    Poison(
        "event-NaN-score",
        "detections",
        json.dumps({**EV, "event_id": "nan1", "score": float("nan")}).encode(),
        "not a valid",
    ),
    Poison(
        "event-bbox-norm-out-of-range",
        "detections",
        json.dumps({**EV, "event_id": "n2", "bbox_norm": [0, 0, 7, 7]}).encode(),
        "not a valid",
    ),
    Poison("event-tombstone", "detections", None, "empty message value"),
    Poison("event-not-utf8", "detections", b"\xff\xfe\x00garbage", "not a valid"),
    Poison("event-json-array", "detections", b"[1, 2, 3]", "not a valid"),
    Poison(
        "summary-missing-fields",
        "summaries",
        b'{"schema": "sightline.summary/1", "camera_id": "cam1"}',
        NOT_SUMMARY,
    ),
    Poison("summary-not-json", "summaries", b"summary: all quiet", NOT_SUMMARY),
    Poison(
        "status-unknown-component",
        "status",
        b'{"component": "toaster", "id": "t", "state": "running"}',
        "not a valid sightline.status/1",
    ),
    Poison("control-unknown-op", "control", b'{"op": "explode", "kind": "camera", "id": "c9"}', NOT_CONTROL),
    Poison("control-nul-in-name", "control", json.dumps(NUL_CAMERA).encode(), NOT_CONTROL),
    Poison("control-body-id-mismatch", "control", json.dumps(ID_MISMATCH).encode(), NOT_CONTROL),
]


@dataclass
class Run:
    dead: dict[str, dict[str, Any]]  # by original key
    settings: Settings
    topics: Topics
    rcs: dict[str, int | None]
    analyzer: StatusUpdate | None
    camera: StatusUpdate | None
    committed: dict[str, tuple[int, int]]  # group -> (committed, end) summed over its topics


def _good_frame(i: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    return GOOD_JPEG, [FRAME, (META_HEADER, _meta(frame_id=i, pts_s=float(i)))]


def _produce(p: Producer, topics: Topics) -> None:
    by_kind = {
        "frames": topics.frames,
        "detections": topics.detections,
        "summaries": topics.summaries,
        "status": topics.status,
        "control": topics.control,
    }
    q = QuerySpec(id="red", text="red people")
    p.send(topics.control, f"query:{q.id}", ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    v, h = _good_frame(0)
    p.send_raw(topics.frames, b"cam", v, h)
    p.send(topics.detections, "cam1", samples.event("cam1", "red", "a", "start", 0, 0.0))
    for case in POISON:
        # send_raw takes bytes; a tombstone (None value) needs the client itself.
        p._p.send(by_kind[case.topic], key=case.id.encode(), value=case.value, headers=list(case.headers))
    v, h = _good_frame(1)
    p.send_raw(topics.frames, b"cam", v, h)
    p.send(topics.detections, "cam1", samples.event("cam1", "red", "a", "end", 9, 0.9))
    p.send(topics.summaries, "cam1", samples.summary("cam1"))
    p.flush()


def _read(bootstrap: str, topic: str, idle_s: float = 1.0) -> list[Any]:
    consumer = make_consumer(bootstrap, [topic], None, client_id="badinput-read")
    out: list[Any] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            got = consumer.poll(timeout_ms=200)
            for recs in got.values():
                out += recs
            if got:
                last = time.monotonic()
    finally:
        consumer.close()
    return out


def _committed(bootstrap: str, group: str, topics: list[str]) -> tuple[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="badinput-admin")
    consumer = make_consumer(bootstrap, [], None, client_id="badinput-ends")
    try:
        offsets = admin.list_group_offsets(group)
        offsets = offsets.get(group, offsets)
        done = sum(om.offset for tp, om in offsets.items() if tp.topic in topics and om.offset > 0)
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        end = sum(consumer.end_offsets(tps).values())
    finally:
        admin.close()
        consumer.close()
    return done, end


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, short_clip: Path) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("badinput-kafka")
    prefix = f"bad{int(time.time() * 1000) % 10**9}"
    settings = load_settings(
        None,
        data_dir=str(tmp / "data"),
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": prefix, "partitions": 1},
        analyzer={"group_id": f"{prefix}-analyzer"},
        store={"group_id": f"{prefix}-sink", "retention_days": 36500},
    )
    topics = Topics.from_config(settings.bus)
    ensure_topics(kafka_bootstrap, topics.all(), 1)
    stop = threading.Event()
    rcs: dict[str, int | None] = {}

    def serve(name: str, fn: Any) -> None:
        rcs[name] = None
        rcs[name] = fn(settings, stop)

    threads = [
        threading.Thread(target=serve, args=(n, f), name=f"badinput-{n}", daemon=True)
        for n, f in (
            ("ingest", ingest_service.run),
            ("analyzer", analyzer_service.run),
            ("sink", sink_service.run),
        )
    ]
    for t in threads:
        t.start()
    producer = Producer(kafka_bootstrap, client_id="badinput")
    _produce(producer, topics)
    # After the poison: a real camera, so ingest shows it still follows the control topic.
    cam = CameraSpec(id="after-poison", url=str(short_clip), realtime=False)
    producer.send(
        topics.control, f"camera:{cam.id}", ControlMessage(op="upsert", kind="camera", id=cam.id, camera=cam)
    )
    producer.flush()
    producer.close()

    store = Store(settings.store_url)
    deadline = time.monotonic() + 90
    dead: dict[str, dict[str, Any]] = {}
    camera: StatusUpdate | None = None
    try:
        while time.monotonic() < deadline:
            dead = {
                json.loads(r.value)["key"]: json.loads(r.value)
                for r in _read(kafka_bootstrap, topics.deadletter, 0.3)
            }
            camera = next(
                (StatusUpdate.model_validate(s) for s in store.statuses("camera") if s["id"] == cam.id), None
            )
            frames_done = _committed(kafka_bootstrap, settings.analyzer.group_id, [topics.frames])
            if (
                len(dead) >= len(POISON)
                and camera is not None
                and camera.state == "stopped"
                and frames_done[0] >= frames_done[1]
                and store.counts()["summaries"] >= 1
            ):
                break
            time.sleep(0.5)
        waited = f"dead {len(dead)}/{len(POISON)}, camera {camera and camera.state}, frames {frames_done}"
        alive = {t.name: t.is_alive() for t in threads}
        committed = {
            "analyzer": _committed(kafka_bootstrap, settings.analyzer.group_id, [topics.frames]),
            "sink": _committed(
                kafka_bootstrap,
                settings.store.group_id,
                [topics.detections, topics.summaries, topics.control],
            ),
        }
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert all(alive.values()), f"a service died on poison: {alive}, rcs {rcs} ({waited})"
    statuses = []
    for r in _read(kafka_bootstrap, topics.status, 0.5):
        try:
            statuses.append(decode(r, StatusUpdate))
        except PoisonMessage:  # the status poison of this very test
            continue
    analyzer = next(
        (s for s in reversed(statuses) if s.component == "analyzer" and s.state == "stopped"), None
    )
    yield Run(dead, settings, topics, rcs, analyzer, camera, committed)
    store.close()


@pytest.mark.parametrize("case", POISON, ids=[p.id for p in POISON])
def test_poison_message_is_dead_lettered_with_its_reason(run: Run, case: Poison) -> None:
    letter = run.dead.get(case.id)
    assert letter is not None, f"no dead letter for {case.id}; have {sorted(run.dead)}"
    assert letter["topic"] == getattr(run.topics, case.topic)
    assert case.reason in letter["reason"], letter["reason"]
    assert letter["worker"].startswith("analyzer" if case.topic == "frames" else "sink")


def test_every_consumer_went_on_past_the_poison(run: Run) -> None:
    assert run.rcs == {"ingest": 0, "analyzer": 0, "sink": 0}  # each stopped cleanly when asked
    for group, (done, end) in run.committed.items():
        assert done >= end > 0, f"{group} committed {done} of {end}: stuck behind a poison message"
    # The analyzer answered the good frames on both sides of the poison (and the camera's frames).
    assert run.analyzer is not None
    assert run.analyzer.counters["engine_calls"] >= 2
    assert run.analyzer.counters["dead_lettered"] == sum(1 for p in POISON if p.topic == "frames")
    # Ingest skipped the bad control messages and still started the camera registered after them.
    assert run.camera is not None and run.camera.state == "stopped" and run.camera.reason == "end of file"
    store = Store(run.settings.store_url)
    try:
        assert {e["event_id"] for e in store.events(EventFilter(camera_id="cam1")).items} >= {
            samples.event("cam1", "red", "a", "start", 0, 0.0).event_id,
            samples.event("cam1", "red", "a", "end", 9, 0.9).event_id,
        }
        assert store.counts()["summaries"] >= 1
        assert {c.id for c in store.cameras()} == {"after-poison"}  # no poisoned camera got in
    finally:
        store.close()
