"""The pieces of scale-out that need no broker: the pause clock, what a pause costs a camera, and the
analyzer's owner fence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types

import pytest

from analyzer.fence import OwnerFence
from lifecycle.pause import PauseClock


def test_the_pause_clock_sees_the_process_not_running_and_nothing_else() -> None:
    c = PauseClock(tick_s=0.05, slack_s=0.3).start()
    t0 = time.monotonic()
    time.sleep(0.5)  # a thread sleeping is not the process paused
    assert c.paused_since(t0) == 0.0
    # What a resumed process sees before its ticker thread has run again: a tick 2 s late.
    with c._lock:
        c._last_tick -= 2.0
    before = time.monotonic() - 10.0
    assert 1.5 < c.paused_since(before) < 2.6  # noticed at once, before the ticker runs again
    time.sleep(0.2)
    assert 1.5 < c.paused_since(before) < 2.6  # and remembered after it ran
    assert c.paused_since(time.monotonic()) == 0.0  # nothing after it


def test_a_real_sigstop_is_measured_by_the_stopped_process() -> None:
    code = (
        "import time, sys; from lifecycle.pause import clock\n"
        "c = clock(); t0 = time.monotonic(); print('ready', flush=True)\n"
        "while time.monotonic() - t0 < 4.0: time.sleep(0.05)\n"
        "print(round(c.paused_since(t0), 1), flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        p.send_signal(signal.SIGSTOP)
        time.sleep(2.0)
        p.send_signal(signal.SIGCONT)
        paused = float(p.stdout.readline())
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert 1.6 <= paused <= 2.6, paused


def test_the_fence_drops_a_stale_owner_and_follows_a_newer_one() -> None:
    f = OwnerFence(reset_after_s=30.0)
    assert f.admit("cam", "a", 3, now=0.0)
    assert f.admit("cam", "b", 5, now=1.0)  # the camera moved to b in a later generation
    assert not f.admit("cam", "a", 3, now=2.0)  # a wakes up and still publishes: dropped
    assert f.admit("cam", "b", 5, now=3.0)
    assert f.admit("other", "a", 3, now=3.0)  # per camera: a still owns its other cameras
    assert f.admit("cam", "a", 8, now=4.0)  # handed back to a later: a's new epoch is current
    assert not f.admit("cam", "b", 5, now=5.0)
    assert f.dropped == 2
    assert f.admit("cam", "x", -1, now=6.0)  # unfenced publishers (replay) pass


def test_the_fence_recovers_when_the_group_restarts_its_generations() -> None:
    f = OwnerFence(reset_after_s=10.0)
    assert f.admit("cam", "a", 40, now=0.0)
    assert not f.admit("cam", "a", 1, now=5.0)  # could be a stale owner: the higher one spoke 5 s ago
    assert f.admit("cam", "a", 1, now=11.0)  # the higher epoch has been silent: the group was reset
    assert f.admit("cam", "a", 1, now=12.0)


class _Paused:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def paused_since(self, since: float) -> float:
        return self.seconds


@pytest.mark.parametrize(("paused_s", "gone", "ours"), [(0.0, 19, 0), (6.0, 7, 12), (30.0, 0, 19)])
def test_frames_a_live_camera_missed_while_the_process_was_paused_are_not_blamed_on_the_source(
    monkeypatch: pytest.MonkeyPatch, paused_s: float, gone: int, ours: int
) -> None:
    from configs import load_settings
    from ingest import camera
    from sightline.testing.ingest_kit import MemoryFramePublisher, make_plan

    monkeypatch.setattr(camera.pause, "clock", lambda: _Paused(paused_s))
    w = camera.CameraWorker(
        make_plan("rtsp://127.0.0.1:9/cam"), load_settings(None).ingest, MemoryFramePublisher()
    )
    w._gone_since = time.monotonic() - 10.0  # 10 s without frames at 2 fps: 19 sampled frames missed
    w._count_gap(types.SimpleNamespace(nominal_fps=25.0))  # type: ignore[arg-type]
    assert w.drops.get("source_gone", 0) == gone
    assert w.drops.get("process_paused", 0) == ours
    assert w.gone_s == pytest.approx(max(0.0, 10.0 - paused_s), abs=0.1)
