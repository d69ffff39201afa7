"""The ingest process end to end on a real broker: register a file camera, get its frames."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from bus.contracts import CameraSpec
from bus.topics import Topics
from configs import Settings
from sightline.testing.ingest_kit import (
    TopicReader,
    collect_until,
    frames_of,
    register,
    running_ingest,
    statuses,
)

pytestmark = pytest.mark.timeout(90)


def _settings(
    make_settings: Callable[..., Settings], bootstrap: str, prefix: str, **ingest: object
) -> Settings:
    return make_settings(
        bus={"bootstrap": bootstrap, "topic_prefix": prefix},
        ingest={
            "worker_id": f"ingest-{prefix}",
            "status_interval_s": 0.5,
            "worker_heartbeat_s": 0.5,
            **ingest,
        },
    )


def test_file_camera_publishes_sampled_frames_then_stops_at_end_of_file(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings], short_clip: Path
) -> None:
    settings = _settings(make_settings, kafka_bootstrap, topic_prefix)
    topics = Topics.from_config(settings.bus)
    with av.open(str(short_clip)) as c:
        s = c.streams.video[0]
        assert s.average_rate is not None
        duration = float(s.frames / s.average_rate)
        width, height = s.codec_context.width, s.codec_context.height
    register(kafka_bootstrap, topics, CameraSpec(id="cam1", url=str(short_clip), sample_fps=2.0))

    frames_reader = TopicReader(kafka_bootstrap, topics.frames)
    status_reader = TopicReader(kafka_bootstrap, topics.status)
    with running_ingest(settings):
        status = statuses(
            collect_until(
                status_reader,
                lambda got: any(b'"stopped"' in r.value and b"cam1" in r.value for r in got),
                30,
            )
        )
        frames = frames_of(collect_until(frames_reader, lambda got: len(got) >= 8, 10))
        frames += frames_of(frames_reader.records(500))  # nothing more may come
    frames_reader.close()
    status_reader.close()

    cam = [s for s in status if s.component == "camera" and s.id == "cam1"]
    states = [s.state for s in cam]
    assert states[0] == "starting" and "streaming" in states
    assert cam[-1].state == "stopped" and cam[-1].reason == "end of file"
    assert any(s.component == "ingest" and s.state == "running" for s in status)

    expected = round(duration * 2.0)
    assert len(frames) == expected, [m.pts_s for m, _ in frames]
    metas = [m for m, _ in frames]
    assert {m.camera_id for m in metas} == {"cam1"}
    assert len({m.source_session for m in metas}) == 1
    ids = [m.frame_id for m in metas]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Sampling at 2 fps from 10 fps keeps one frame in five, half a second of media time apart.
    assert [round(m.pts_s, 3) for m in metas] == [round(i * 0.5, 3) for i in range(expected)]
    assert [m.frame_id for m in metas] == [i * 5 for i in range(expected)]
    walls = [m.wall_ts for m in metas]
    assert walls == sorted(walls)
    for meta, jpeg in frames:
        assert (meta.width, meta.height) == (width, height)
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        assert img.shape[:2] == (meta.encoded_height, meta.encoded_width) == (height, width)
        assert meta.sampled_reason in ("first", "sample")
