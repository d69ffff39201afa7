"""Watching who streams each camera, from the frames topic (scale-out and chaos tests)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bus.contracts import StatusUpdate
from bus.topics import Topics
from sightline.testing.ingest_kit import TopicReader, frames_of, statuses


@dataclass
class Seen:
    at: float  # this reader's monotonic clock when the frame arrived
    camera: str
    owner: str
    epoch: int


@dataclass
class Owners:
    """Every frame's (arrival time, camera, owner, epoch) and every camera status, as they come."""

    bootstrap: str
    topics: Topics
    frames: list[Seen] = field(default_factory=list)
    status: list[tuple[float, StatusUpdate]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._f = TopicReader(self.bootstrap, self.topics.frames)
        self._s = TopicReader(self.bootstrap, self.topics.status)

    def pump(self) -> None:
        now = time.monotonic()
        self.frames += [
            Seen(now, m.camera_id, m.owner, m.owner_epoch) for m, _ in frames_of(self._f.records(100))
        ]
        self.status += [(now, s) for s in statuses(self._s.records(50)) if s.component == "camera"]

    def watch(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump()

    def until(self, check: Callable[[], bool], timeout_s: float, what: str) -> float:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline, f"timed out: {what}"
            self.pump()
        return time.monotonic()

    def owners_since(self, t: float) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for s in self.frames:
            if s.at >= t:
                out.setdefault(s.camera, set()).add(s.owner)
        return out

    def streaming_since(self, t: float, cameras: set[str], window_s: float = 3.0) -> bool:
        """Each camera has frames from exactly one owner in the last `window_s` (and after t)."""
        o = self.owners_since(max(t, time.monotonic() - window_s))
        return set(o) >= cameras and all(len(o[c]) == 1 for c in cameras)

    def overlaps(self, gap_s: float = 1.6) -> dict[str, float]:
        """Per camera, the longest time two owners both streamed it (runs of frames < gap_s apart)."""
        worst: dict[str, float] = {}
        for cam in {s.camera for s in self.frames}:
            runs: dict[str, list[list[float]]] = {}
            for s in (s for s in self.frames if s.camera == cam):
                rs = runs.setdefault(s.owner, [])
                if rs and s.at - rs[-1][1] <= gap_s:
                    rs[-1][1] = s.at
                else:
                    rs.append([s.at, s.at])
            owners = sorted(runs)
            longest = 0.0
            for i, a in enumerate(owners):
                for b in owners[i + 1 :]:
                    for ra in runs[a]:
                        for rb in runs[b]:
                            longest = max(longest, min(ra[1], rb[1]) - max(ra[0], rb[0]))
            worst[cam] = longest
        return worst

    def longest_gap(self, since: float, until: float | None = None) -> dict[str, float]:
        """Per camera, the longest time without a frame (from any owner) between since and until."""
        until = time.monotonic() if until is None else until
        gaps: dict[str, float] = {}
        for cam in {s.camera for s in self.frames}:
            times = (
                [since] + [s.at for s in self.frames if s.camera == cam and since <= s.at <= until] + [until]
            )
            gaps[cam] = max(b - a for a, b in itertools.pairwise(times))
        return gaps

    def failed(self) -> list[StatusUpdate]:
        return [s for _, s in self.status if s.state == "failed"]

    def close(self) -> None:
        self._f.close()
        self._s.close()


def start_ingest(
    bootstrap: str,
    prefix: str,
    worker: str,
    log: Path,
    session_timeout_s: float = 3.0,
    clock_offset_s: float = 0.0,
    **env: str,
) -> subprocess.Popen[bytes]:
    """A real `sightline ingest` process in its own session (so a test can SIGSTOP just it), its
    wall clock off by `clock_offset_s` (`sightline.testing.skewed_clock`)."""
    full = {
        **os.environ,
        "SIGHTLINE_BUS__TOPIC_PREFIX": prefix,
        "SIGHTLINE_INGEST__WORKER_ID": worker,
        "SIGHTLINE_INGEST__SESSION_TIMEOUT_S": str(session_timeout_s),
        "SIGHTLINE_INGEST__STATUS_INTERVAL_S": "0.5",
        **env,
    }
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    verb = ["ingest", "--bootstrap", bootstrap]
    if clock_offset_s:
        cmd = [sys.executable, "-m", "sightline.testing.skewed_clock", str(clock_offset_s), *verb]
    else:
        cmd = [sys.executable, "-m", "sightline.cli", *verb]
    try:
        return subprocess.Popen(cmd, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()
