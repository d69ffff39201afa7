"""No poll-batch barrier: one camera's slow engine answers do not hold another camera's frames.

The real analyzer process on the test broker, the scripted GLM server answering from the pixels;
camera "slow" (320 px wide) gets its answers after 2 s, camera "fast" (480 px) after 50 ms. Every
answered frame yields an event (updates unthrottled), so a frame's latency is the time from its
publication to its event on the detections topic, per camera. The events of both cameras must be
exactly those of a run where no answer is delayed.
"""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import pytest

from bus.contracts import CameraSpec, EndOfStream, FrameMeta, ObjectEvent, QuerySpec, utcnow
from bus.kafka import Producer, make_consumer
from sightline.samples import Figure, background, render
from sightline.testing.scripted_server import ScriptedServer

from stackkit import Stack, wait_for

pytestmark = pytest.mark.e2e
FPS = 2.0
FRAMES = 12
CAMERAS = {"slow": (320, 240), "fast": (480, 270)}
FIGURE = Figure(colour=(30, 30, 220), enter_s=0.0, exit_s=FRAMES / FPS, start=(0.2, 0.5), end=(0.8, 0.5))


def _run(bootstrap: str, prefix: str, data: Path, latency_by_width: dict[int, float]) -> dict[str, Any]:
    scenario = {"mode": "colour", "latency_by_width": latency_by_width}
    with ScriptedServer(scenario) as glm:
        stack = Stack(
            bootstrap,
            prefix,
            data,
            SIGHTLINE_ENGINE__TYPE="openai",
            SIGHTLINE_ENGINE__BASE_URL=glm.base_url,
            SIGHTLINE_ENGINE__API_KEY="test",
            SIGHTLINE_ANALYZER__TRACKING__MIN_HITS="1",
            SIGHTLINE_ANALYZER__TRACKING__UPDATE_EVERY_S="0",
            SIGHTLINE_ANALYZER__TRACKING__UPDATE_MOVE_FRAC="0",
        )
        # One query on both cameras: the slow camera keeps 4 of the 8 concurrent calls busy, so a
        # wait for a free slot cannot pass for a barrier.
        stack.register(CameraSpec(id="slow", url="slow.mp4"), QuerySpec(id="red", text="people in red"))
        stack.register(CameraSpec(id="fast", url="fast.mp4"))
        stack.start("analyze")
        producer = Producer(bootstrap)
        published: dict[tuple[str, int], float] = {}
        consumer = make_consumer(bootstrap, [stack.topics.detections], f"{prefix}-{uuid.uuid4().hex[:6]}")
        events: list[tuple[ObjectEvent, float]] = []

        def drain() -> None:
            for recs in consumer.poll(timeout_ms=50).values():
                for r in recs:
                    events.append(
                        (ObjectEvent.model_validate_json(r.value), r.timestamp / 1000)
                    )  # when produced

        try:
            log = data / "logs" / "analyze-0.log"
            wait_for(lambda: "assigned partitions" in log.read_text(), 60, "the worker's partitions", stack)
            for i in range(FRAMES):
                for cam, (w, h) in CAMERAS.items():
                    img = render(i / FPS, background(w, h), [FIGURE])
                    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
                    meta = FrameMeta(
                        camera_id=cam,
                        frame_id=i,
                        source_session="s1",
                        pts_s=i / FPS,
                        wall_ts=utcnow(),
                        width=w,
                        height=h,
                        encoded_width=w,
                        encoded_height=h,
                        live=False,
                    )
                    producer.send_frame(stack.topics.frames, meta, jpeg)
                    published[(cam, i)] = time.time()
                producer.flush()
                t_next = time.time() + 1 / FPS
                while time.time() < t_next:
                    drain()
            for cam in CAMERAS:
                producer.send_end_of_stream(
                    stack.topics.frames,
                    EndOfStream(camera_id=cam, source_session="s1", last_frame_id=FRAMES - 1),
                )
            producer.flush()

            def ended() -> bool:
                drain()
                return {e.camera_id for e, _ in events if e.phase == "end"} == set(CAMERAS)

            wait_for(ended, 90, "an end event on both cameras", stack)
        finally:
            consumer.close()
            producer.close()
            stack.stop()
    latency: dict[str, list[float]] = {cam: [] for cam in CAMERAS}
    for e, seen in events:
        if e.phase != "end":
            latency[e.camera_id].append(seen - published[(e.camera_id, e.frame_id)])
    unique = {e.event_id: e for e, _ in events}  # at-least-once: a redelivery repeats an id
    return {
        "events": sorted((e.camera_id, e.phase, e.frame_id, e.track_id, e.bbox) for e in unique.values()),
        "latency": latency,
    }


def test_a_slow_camera_does_not_hold_a_fast_one(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    calm = _run(kafka_bootstrap, topic_prefix + "-calm", tmp_path / "calm", {})
    mixed = _run(kafka_bootstrap, topic_prefix + "-mixed", tmp_path / "mixed", {320: 2.0, 480: 0.05})
    fast, slow = mixed["latency"]["fast"], mixed["latency"]["slow"]
    assert len(fast) == len(slow) == FRAMES  # one start, then an update per answered frame
    # The fast camera's frames are answered while the slow camera's calls are pending: with a
    # barrier every poll batch waited ~2 s for the slow answer, so the fast camera's did too.
    assert statistics.median(fast) < 0.5, f"fast camera latencies {fast}"
    assert max(fast) < 1.2, f"fast camera latencies {fast}"
    assert statistics.median(slow) >= 2.0  # the delay was real
    assert mixed["events"] == calm["events"]
