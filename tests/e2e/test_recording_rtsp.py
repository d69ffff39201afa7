"""Recording a real RTSP camera (GStreamer test server) through the ingest service on the broker."""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from conftest import need  # type: ignore[import-not-found]
from fastapi.testclient import TestClient

from bus.broker import free_port
from bus.contracts import CameraSpec, RecordedSegment
from bus.kafka import Producer, ensure_topics
from bus.topics import Topics
from configs import Settings
from configs.settings import IngestConfig
from dashboard.app import create_app
from ingest.camera import CameraWorker
from ingest.manager import CameraManager, KafkaFramePublisher
from ingest.recorder import SegmentRecorder
from sightline.testing.ingest_kit import (
    MemoryFramePublisher,
    RtspServer,
    TopicReader,
    make_plan,
    rtsp_server_available,
)
from sinks.recordings import segments_between
from sinks.service import run as sink_run
from sinks.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
NO_RTSP = "GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is not installed"


def _decode(path: Path) -> tuple[int, bool]:
    """(frames decoded, first frame is a keyframe)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return len(frames), bool(frames and frames[0].key_frame)


def record_with_outage(
    bootstrap: str, prefix: str, make_settings: Callable[..., Settings], outage_s: float = 5.0
) -> tuple[Settings, list[RecordedSegment], float, float]:
    """Records a camera whose server is stopped for `outage_s` mid-way; (settings, segments, down, up)."""
    settings = make_settings(
        bus={"bootstrap": bootstrap, "topic_prefix": prefix},
        ingest={"worker_id": f"ingest-{prefix}", "read_timeout_s": 2.0, "reconnect_max_s": 1.0},
        recording={"segment_s": 2.0, "min_free_bytes": 0},
    )
    topics = Topics.from_config(settings.bus)
    ensure_topics(bootstrap, topics.all(), settings.bus.partitions)
    server = RtspServer(free_port())
    server.start()
    spec = CameraSpec(id="door", url=server.url, sample_fps=2.0, record="continuous")
    reader = TopicReader(bootstrap, topics.recordings)
    # Ingest's camera manager and Kafka publisher as the service runs them; ownership (the ingest
    # group, tests/e2e/test_ingest_*) is left out so that its rounds on a loaded machine do not
    # decide how long this test waits.
    producer = Producer(bootstrap)
    manager = CameraManager(settings, KafkaFramePublisher(producer, topics), "ingest-rec")
    segs: list[RecordedSegment] = []

    def pump(until: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not until():
            assert time.monotonic() < deadline, f"timed out; segments so far: {[s.path for s in segs]}"
            segs.extend(RecordedSegment.model_validate_json(r.value) for r in reader.records(200))

    try:
        manager.reconcile({"door": spec}, {"door": 1}, {"door"})
        pump(lambda: len(segs) >= 2, 30)
        server.kill()
        down = time.time()
        time.sleep(outage_s)
        server.start()
        up = time.time()
        pump(lambda: any(s.start_ts.timestamp() > up for s in segs) and len(segs) >= 5, 30)
        manager.stop_all(5.0)
        producer.flush(5.0)
        pump(lambda: True, 1)
        segs.extend(RecordedSegment.model_validate_json(r.value) for r in reader.records(500))
    finally:
        manager.stop_all(5.0)
        producer.close(5.0)
        reader.close()
        server.kill()
    return settings, segs, down, up


def test_rtsp_recording_survives_an_outage_with_clean_segments_an_index_and_a_clip_with_the_gap(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings]
) -> None:
    need(rtsp_server_available(), NO_RTSP)
    settings, segs, down, up = record_with_outage(kafka_bootstrap, topic_prefix, make_settings)
    root = Path(settings.data_dir) / "recordings"
    sessions = sorted(
        {s.source_session for s in segs}, key=lambda x: min(s.start_ts for s in segs if s.source_session == x)
    )
    assert len(sessions) >= 2, "the reconnect must start a new session"
    for s in segs:
        frames, key_first = _decode(root / s.path)
        assert s.complete and key_first, s
        assert frames == s.frames, f"{s.path}: {frames} decoded, {s.frames} written"
    for sess in sessions:
        mine = sorted((s for s in segs if s.source_session == sess), key=lambda s: s.seq)
        assert [s.seq for s in mine] == list(range(len(mine)))
        # Cut at the first keyframe after segment_s (2 s; a keyframe every second); a session's last
        # segment is whatever was left when the source went away.
        assert all(1.9 < s.duration_s < 3.1 for s in mine[:-1]), [s.duration_s for s in mine]
    first = sorted((s for s in segs if s.source_session == sessions[0]), key=lambda s: s.seq)
    for a, b in itertools.pairwise(first):
        assert abs(b.start_ts.timestamp() - a.end_ts.timestamp()) < 0.15, "one session's segments abut"
    last_before = first[-1].end_ts.timestamp()
    first_after = min(s.start_ts.timestamp() for s in segs if s.source_session == sessions[1])
    assert last_before <= down + 0.5 and first_after >= up - 0.5
    assert first_after - last_before >= 4.5, "the outage is a hole between the segments"

    # The sink process indexes what ingest announced on the recordings topic.
    stop = threading.Event()
    sink = threading.Thread(target=sink_run, args=(settings, stop), daemon=True)
    sink.start()
    store = Store(settings.store_url)
    want = [s.segment_id for s in sorted(segs, key=lambda s: (s.start_ts, s.seq))]
    try:
        deadline = time.monotonic() + 30
        while [r.segment_id for r in segments_between(store.engine, "door", down - 60, up + 60)] != want:
            assert time.monotonic() < deadline, "the sink did not index every segment"
            time.sleep(0.2)
        # A clip across the outage: the hole is reported, the rest plays.
        with TestClient(create_app(settings)) as client:
            a, b = datetime.fromtimestamp(down - 3, UTC), datetime.fromtimestamp(up + 2.5, UTC)
            r = client.get("/api/cameras/door/clip", params={"start": a.isoformat(), "end": b.isoformat()})
        assert r.status_code == 200, r.text
        gaps = json.loads(r.headers["x-sightline-gaps"])
        assert len(gaps) == 1 and gaps[0]["end"] - gaps[0]["start"] >= 4.5, gaps
        assert down - 0.5 <= gaps[0]["start"] <= down + 0.5 and up - 0.5 <= gaps[0]["end"] <= up + 2.5
        with av.open(io.BytesIO(r.content)) as c:
            times = [f.time for f in c.decode(video=0)]
        origin = float(r.headers["x-sightline-clip-origin"])
        assert origin <= down - 3 and times[-1] + origin >= up + 1.0
        hole = (gaps[0]["start"] - origin, gaps[0]["end"] - origin)
        assert not [t for t in times if hole[0] + 0.1 < t < hole[1] - 0.1], "no frames inside the hole"
    finally:
        stop.set()
        sink.join(15)
        store.close()


def test_a_full_disk_stops_recording_with_a_reason_while_frames_keep_flowing(tmp_path: Path) -> None:
    need(rtsp_server_available(), NO_RTSP)
    with RtspServer(free_port()) as server:
        got: list[RecordedSegment] = []
        rec = SegmentRecorder("door", tmp_path, "continuous", min_free_bytes=10**18, on_segment=got.append)
        sink = MemoryFramePublisher(keep_jpeg=False)
        worker = CameraWorker(
            make_plan(server.url, camera_id="door", sample_fps=5.0), IngestConfig(), sink, recorder=rec
        )
        worker.start()
        try:
            assert sink.wait_for(lambda s: len(s.frames) >= 10, 20)
            status = worker.snapshot()
        finally:
            worker.stop()
            assert worker.join(10)
    assert status.state == "streaming" and "recording stopped: disk full" in status.reason
    assert status.counters["recording"] == 0
    assert got == [] and not list(tmp_path.rglob("*.mp4"))
