"""Small parts of ingest: sampling, JPEG sizing, the frame queue, backoff, camera slots."""

from __future__ import annotations

import random
import threading
import time

import av
import cv2
import numpy as np
import pytest

from ingest.camera import Backoff
from ingest.encode import encode_jpeg, fit
from ingest.framequeue import FrameQueue
from ingest.ownership import slot_of
from ingest.sampling import Pacer, Sampler


@pytest.mark.parametrize(
    ("src_fps", "fps", "seconds", "expected"), [(10, 2, 4, 8), (25, 2, 10, 20), (30, 1, 5, 5)]
)
def test_sampler_keeps_duration_times_fps(src_fps: int, fps: float, seconds: int, expected: int) -> None:
    s = Sampler(fps)
    kept = [i / src_fps for i in range(src_fps * seconds) if s.keep(i / src_fps)]
    assert len(kept) == expected
    assert np.all(np.abs(np.diff(kept) - 1 / fps) <= 1 / src_fps + 1e-9)  # on the source frame grid


def test_sampler_follows_a_stream_that_restarts_its_clock() -> None:
    s = Sampler(2.0)
    first = [t / 10 for t in range(30) if s.keep(t / 10)]
    again = [t / 10 for t in range(10) if s.keep(t / 10)]
    assert first == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert again == [0.0, 0.5]


def test_sampler_with_a_source_slower_than_the_rate_keeps_every_frame() -> None:
    s = Sampler(5.0)
    assert all(s.keep(t / 2) for t in range(10))


def test_pacer_holds_frames_until_their_media_time() -> None:
    p = Pacer(threading.Event())
    t0 = time.monotonic()
    for pts in (10.0, 10.2, 10.4):
        p.wait(pts)
    assert 0.38 <= time.monotonic() - t0 < 0.6


def test_a_paced_file_far_behind_its_schedule_does_not_burst_to_catch_up() -> None:
    # What a process sees after a pause (SIGSTOP, frozen VM): its schedule is long past.
    p = Pacer(threading.Event())
    p.wait(0.0)
    p._origin = (time.monotonic() - 20.0, 0.0)  # as if 20 s went by without us running
    p.wait(0.2)  # far behind: the schedule restarts here instead of letting 20 s of frames through
    t0 = time.monotonic()
    for pts in (0.4, 0.6):
        p.wait(pts)
    assert 0.35 <= time.monotonic() - t0 < 0.6


def test_fit_keeps_aspect_and_never_upscales() -> None:
    assert fit(1920, 1080, 1280, 1280) == (1280, 720)
    assert fit(640, 480, 1280, 1280) == (640, 480)
    assert fit(1080, 1920, 1280, 1280) == (720, 1280)


def test_a_frame_too_big_for_the_bus_is_downscaled_not_dropped() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)  # incompressible: a worst case
    frame = av.VideoFrame.from_ndarray(noise, format="bgr24")
    enc = encode_jpeg(frame, max_width=1920, max_height=1080, quality=90, max_bytes=200_000)
    assert len(enc.jpeg) <= 200_000
    assert enc.width < 1920 and abs(enc.width / enc.height - 16 / 9) < 0.02
    img = cv2.imdecode(np.frombuffer(enc.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (enc.height, enc.width)


def test_drop_oldest_queue_keeps_the_newest_and_counts_drops() -> None:
    q: FrameQueue[int] = FrameQueue(3, "drop_oldest")
    for i in range(5):
        assert q.put(i)
    assert q.dropped == 2
    assert [q.get(0.01) for _ in range(4)] == [2, 3, 4, None]


def test_blocking_queue_loses_nothing_and_unblocks_on_stop() -> None:
    q: FrameQueue[int] = FrameQueue(2, "block")
    got: list[int] = []

    def consume() -> None:
        while (item := q.get(1.0)) is not None:
            got.append(item)
            time.sleep(0.001)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(50):
        assert q.put(i)
    q.close()
    t.join(5)
    assert got == list(range(50)) and q.dropped == 0

    full: FrameQueue[int] = FrameQueue(1, "block")
    stop = threading.Event()
    full.put(0)
    threading.Timer(0.2, stop.set).start()
    assert full.put(1, stop) is False


def test_backoff_grows_to_the_cap_with_jitter_and_resets() -> None:
    b = Backoff(0.5, 8.0, random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    caps = [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len({round(d, 6) for d in delays[4:]}) == 4  # jitter: retries of many cameras spread out
    b.reset()
    assert b.next_delay() <= 0.5


def test_camera_slots_are_stable_across_hosts_and_spread_over_the_slots() -> None:
    cams = [f"cam{i}" for i in range(640)]
    slots = [slot_of(c, 64) for c in cams]
    assert slots == [slot_of(c, 64) for c in cams]  # no per-process hash seed
    # Pinned: processes of two releases in one group (a rolling upgrade) must agree on every slot.
    assert [slot_of(c, 64) for c in ("cam0", "lobby", "door-2")] == [42, 54, 47]
    counts = np.bincount(slots, minlength=64)
    assert counts.min() >= 2 and counts.max() <= 25, counts
    assert all(0 <= slot_of(c, 7) < 7 for c in cams)
