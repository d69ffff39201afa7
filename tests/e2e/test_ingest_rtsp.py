"""A real RTSP camera (GStreamer test server) through the ingest process: flow, kill, come back."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from conftest import need  # type: ignore[import-not-found]

from bus.broker import free_port
from bus.contracts import CameraSpec, StatusUpdate
from bus.kafka import decode_end_of_stream, decode_frame
from bus.topics import Topics
from configs import Settings
from configs.settings import IngestConfig
from ingest.camera import CameraWorker
from sightline.testing.ingest_kit import (
    MemoryFramePublisher,
    RtspServer,
    TopicReader,
    make_plan,
    register,
    rtsp_server_available,
    running_ingest,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


class Watch:
    """Reads frames and camera status as they arrive, stamping each with the time it was seen."""

    def __init__(self, bootstrap: str, topics: Topics, camera_id: str) -> None:
        self.camera_id = camera_id
        self.frames = TopicReader(bootstrap, topics.frames)
        self.status = TopicReader(bootstrap, topics.status)
        self.seen_frames: list[tuple[float, str]] = []  # (seen at, source_session)
        self.seen_status: list[tuple[float, StatusUpdate]] = []

    def pump(self) -> None:
        now = time.monotonic()
        for r in self.frames.records(100):
            if decode_end_of_stream(r) is not None:
                continue
            meta, _ = decode_frame(r)
            self.seen_frames.append((now, meta.source_session))
        for r in self.status.records(100):
            st = StatusUpdate.model_validate_json(r.value)
            if st.component == "camera" and st.id == self.camera_id:
                self.seen_status.append((now, st))

    def wait(self, check: Callable[[], bool], timeout_s: float, what: str) -> float:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.states()}"
            self.pump()
        return time.monotonic()

    def states(self) -> list[str]:
        return [f"{s.state}:{s.reason}" for _, s in self.seen_status]

    def until_state(self, since: float, state: str, timeout_s: float) -> float:
        return self.wait(lambda: self.state_since(since, state) is not None, timeout_s, state)

    def state_since(self, t: float, state: str) -> StatusUpdate | None:
        return next((s for ts, s in self.seen_status if ts >= t and s.state == state), None)

    def close(self) -> None:
        self.frames.close()
        self.status.close()


def test_rtsp_camera_reconnects_after_the_server_dies_and_comes_back(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings]
) -> None:
    need(
        rtsp_server_available(),
        "GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is not installed",
    )
    settings = make_settings(
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix},
        ingest={"worker_id": f"ingest-{topic_prefix}", "status_interval_s": 0.5, "read_timeout_s": 2.0},
    )
    topics = Topics.from_config(settings.bus)
    server = RtspServer(free_port())
    server.start()
    register(kafka_bootstrap, topics, CameraSpec(id="door", url=server.url, sample_fps=5.0))
    watch = Watch(kafka_bootstrap, topics, "door")
    try:
        with running_ingest(settings):
            watch.wait(lambda: len(watch.seen_frames) >= 5, 30, "first frames")
            first_session = watch.seen_frames[-1][1]
            assert watch.state_since(0, "streaming") is not None

            server.kill()
            killed = time.monotonic()
            seen = watch.wait(
                lambda: watch.state_since(killed, "reconnecting") is not None, 10, "reconnecting"
            )
            print(f"reconnecting {seen - killed:.2f}s after the kill")
            assert seen - killed < 5.0, f"reconnecting only after {seen - killed:.1f}s"

            time.sleep(1.0)  # the camera is down for a while; retries fail meanwhile
            server.start()
            back = time.monotonic()
            streaming = watch.wait(
                lambda: watch.state_since(back, "streaming") is not None, 15, "streaming again"
            )
            print(f"streaming again {streaming - back:.2f}s after the restart")
            assert streaming - back < 10.0, f"streaming again only after {streaming - back:.1f}s"
            watch.wait(lambda: any(ts > back for ts, _ in watch.seen_frames), 10, "frames after the restart")
    finally:
        watch.close()
        server.kill()

    after = [s for ts, s in watch.seen_frames if ts > back]
    assert after and all(s != first_session for s in after), (
        "frames after the restart need a new source session"
    )
    again = watch.state_since(back, "streaming")
    assert again is not None and again.source_session not in ("", first_session)
    reconnecting = watch.state_since(killed, "reconnecting")
    assert reconnecting is not None and "retry in" in reconnecting.reason


def _camera(url: str, **cfg: float) -> tuple[CameraWorker, MemoryFramePublisher]:
    plan = make_plan(url, sample_fps=5.0)
    sink = MemoryFramePublisher(keep_jpeg=False)
    worker = CameraWorker(plan, IngestConfig.model_validate(cfg), sink)
    worker.start()
    return worker, sink


def test_wrong_credentials_fail_with_a_reason_that_does_not_leak_the_password() -> None:
    need(rtsp_server_available(), "GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is missing")
    with RtspServer(free_port(), user="admin", password="s3cret") as server:
        wrong = server.url.replace("rtsp://", "rtsp://admin:hunter2@")
        worker, sink = _camera(wrong)
        final = sink.wait_state(("failed",), 15)
        assert worker.join(5)
        assert "unauthorized" in final.reason and "hunter2" not in final.reason
        assert "streaming" not in sink.states()

        right, ok = _camera(server.url.replace("rtsp://", "rtsp://admin:s3cret@"))
        ok.wait_state(("streaming",), 15)
        assert ok.wait_for(lambda s: len(s.frames) >= 3, 10)
        right.stop()
        assert right.join(5)


def test_a_frozen_camera_is_caught_by_the_read_watchdog_and_recovers() -> None:
    need(rtsp_server_available(), "GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is missing")
    with RtspServer(free_port()) as server:
        worker, sink = _camera(server.url, read_timeout_s=1.0, open_timeout_s=2.0, reconnect_max_s=1.0)
        try:
            assert sink.wait_for(lambda s: len(s.frames) >= 3, 15)
            server.freeze()
            frozen = time.monotonic()
            sink.wait_state(("reconnecting",), 10)
            stalled = time.monotonic() - frozen
            print(f"stall detected after {stalled:.1f}s (read timeout 1 s)")
            assert stalled < 5.0
            reason = next(u.reason for u in sink.updates if u.state == "reconnecting")
            assert "timed out" in reason
            server.thaw()
            n = len(sink.updates)
            assert sink.wait_for(lambda s: "streaming" in [u.state for u in s.updates[n:]], 15), sink.states()
        finally:
            server.thaw()
            worker.stop()
            assert worker.join(10)
