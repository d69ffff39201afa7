"""A replay is exact on a busy machine: nothing dropped or cut short, byte-identical output.

The analyzer here is the CPU baseline engine (HOG). The three replays run at once while two busy
loops also spin, so each analyzer is several times slower than its decoder: the clip is decoded
and queued long before the analyzer is done, which is when a replay that waited a fixed time for
its end lost frames (before the fix, a run of this test processed 20 of the 40 frames).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from configs import load_settings
from sightline.replay.run import ReplayResult, make_queries, run_replay

pytestmark = pytest.mark.e2e
BUSY_LOOP = "while True: pass"


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """Two processes that spin for as long as the test runs: both cores of the machine are taken."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)


def test_three_replays_on_busy_cores_process_every_frame_identically(
    vtest_20s: Path, tmp_path: Path, busy_cores: None
) -> None:
    queries = make_queries(["people"], [], window_s=10.0)

    def replay(n: int) -> ReplayResult:
        return run_replay(vtest_20s, load_settings(None, data_dir=str(tmp_path / str(n))), queries)

    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(replay, range(3)))
    for r in runs:
        assert (r.camera_state, r.camera_reason) == ("stopped", "end of file")
        counters = r.camera_counters
        # 20 s at 2 fps: every sampled frame reached the analyzer, the last one included.
        assert r.frames == counters["sampled"] == counters["published"] == 40
        assert counters["gated"] == 0
        # End-of-stream came after them and closed every track at the clip's last instant.
        ends = {e.track_id: e.pts_s for e in r.events if e.phase == "end"}
        assert r.events and set(ends) == {e.track_id for e in r.events}
        assert max(ends.values()) == pytest.approx(19.5)
    assert runs[0].jsonl() == runs[1].jsonl() == runs[2].jsonl()
