"""The live registry: cameras added, changed, removed and split between ingest processes, no restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bus.contracts import CameraSpec, FrameMeta, StatusUpdate
from bus.topics import Topics
from configs import Settings
from sightline.testing.ingest_kit import TopicReader, frames_of, register, running_ingest, statuses

pytestmark = pytest.mark.timeout(120)


class Tail:
    """Frames and status updates seen so far on one test's topics."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.f = TopicReader(bootstrap, topics.frames)
        self.s = TopicReader(bootstrap, topics.status)
        self.frames: list[FrameMeta] = []
        self.status: list[StatusUpdate] = []

    def pump(self) -> None:
        self.frames += [m for m, _ in frames_of(self.f.records(100))]
        self.status += statuses(self.s.records(100))

    def until(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline, f"timed out: {what}"
            self.pump()

    def cam(self, cid: str) -> list[StatusUpdate]:
        return [s for s in self.status if s.component == "camera" and s.id == cid]

    def has(self, cid: str, state: str, reason: str = "", worker: str = "") -> bool:
        return any(
            s.state == state and reason in s.reason and (not worker or s.worker == worker)
            for s in self.cam(cid)
        )

    def close(self) -> None:
        self.f.close()
        self.s.close()


def _settings(make: Callable[..., Settings], bootstrap: str, prefix: str, worker: str) -> Settings:
    fast = {"status_interval_s": 0.5, "worker_heartbeat_s": 0.5, "session_timeout_s": 3.0}
    return make(bus={"bootstrap": bootstrap, "topic_prefix": prefix}, ingest={"worker_id": worker, **fast})


def _cam(cid: str, clip: Path, **kw: object) -> CameraSpec:
    return CameraSpec.model_validate({"id": cid, "url": str(clip), "realtime": True, "loop": True, **kw})


def test_cameras_start_change_and_stop_without_a_restart(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings], short_clip: Path
) -> None:
    settings = _settings(make_settings, kafka_bootstrap, topic_prefix, "solo")
    topics = Topics.from_config(settings.bus)
    tail = Tail(kafka_bootstrap, topics)
    try:
        with running_ingest(settings) as stop:
            register(kafka_bootstrap, topics, _cam("a", short_clip, sample_fps=2.0))
            tail.until(lambda: sum(m.camera_id == "a" for m in tail.frames) >= 3, 20, "frames of a")

            register(kafka_bootstrap, topics, _cam("a", short_clip, sample_fps=5.0))
            tail.until(lambda: tail.has("a", "stopped", "configuration changed"), 10, "a restarts on change")
            old = {m.source_session for m in tail.frames}
            tail.until(
                lambda: sum(m.source_session not in old for m in tail.frames) >= 6, 20, "faster frames"
            )
            session = next(m.source_session for m in tail.frames if m.source_session not in old)
            fresh = [m.pts_s for m in tail.frames if m.source_session == session]
            assert len(fresh) >= 6 and all(abs(d - 0.2) < 0.051 for d in np.diff(fresh)), fresh

            register(kafka_bootstrap, topics, _cam("b", short_clip))
            tail.until(lambda: any(m.camera_id == "b" for m in tail.frames), 20, "frames of b")

            register(kafka_bootstrap, topics, delete="a")
            tail.until(lambda: tail.has("a", "stopped", "deleted"), 10, "a deleted")
            register(kafka_bootstrap, topics, _cam("b", short_clip, enabled=False))
            tail.until(lambda: tail.has("b", "stopped", "disabled"), 10, "b disabled")
            time.sleep(1.0)
            tail.pump()
            counted = len(tail.frames)
            time.sleep(1.5)
            tail.pump()
            assert len(tail.frames) == counted, "removed cameras must not publish"
            t0 = time.monotonic()
            stop.set()
        assert time.monotonic() - t0 < 5.0, "ingest must stop within a few seconds"
    finally:
        tail.close()


def test_two_processes_split_cameras_and_one_takes_over_when_the_other_leaves(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings], short_clip: Path
) -> None:
    s1 = _settings(make_settings, kafka_bootstrap, topic_prefix, "w1")
    s2 = _settings(make_settings, kafka_bootstrap, topic_prefix, "w2")
    topics = Topics.from_config(s1.bus)
    ids = [f"c{i}" for i in range(6)]
    for cid in ids:
        register(kafka_bootstrap, topics, _cam(cid, short_clip))
    tail = Tail(kafka_bootstrap, topics)

    def owners(since: int) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for m in tail.frames[since:]:
            out.setdefault(m.camera_id, set()).add(m.owner)
        return out

    def settled() -> bool:  # the last 3 s of frames: every camera, one owner each, both workers busy
        mark = len(tail.frames)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0:
            tail.pump()
        o = owners(mark)
        return (
            set(o) == set(ids) and all(len(w) == 1 for w in o.values()) and len(set().union(*o.values())) == 2
        )

    try:
        with running_ingest(s2):
            with running_ingest(s1):
                tail.until(settled, 60, "cameras split over both workers, one owner each")
                mark = len(tail.frames)
                tail.until(lambda: len(tail.frames) > mark + 12, 10, "frames after settling")
                moved = sorted(c for c, w in owners(mark).items() if w == {"w1"})
                assert moved and len(moved) < len(ids)
                epochs = {m.camera_id: m.owner_epoch for m in tail.frames[mark:]}
                assert all(e >= 0 for e in epochs.values()), epochs
            left = len(tail.frames)
            tail.until(
                lambda: set(moved) <= {m.camera_id for m in tail.frames[left:] if m.owner == "w2"},
                25,  # a clean leave: two cooperative rounds, each a JoinGroup hold on Tansu
                "w2 takes over w1's cameras",
            )
            after = [m for m in tail.frames[left:] if m.camera_id in moved and m.owner == "w2"]
            assert all(m.owner_epoch > epochs[m.camera_id] for m in after)  # a new owner, a newer epoch
    finally:
        tail.close()
