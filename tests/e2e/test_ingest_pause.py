"""The issue-21 scenario: an ingest process paused (SIGSTOP, as a long GC pause or a frozen VM
does) for far longer than the session timeout, then resumed.

Before: the other process took the cameras over, the resumed one read its own 20 s of not
running as "no decodable frame … (truncated or corrupt file?)", marked them failed, and the
two cameras stayed failed with nobody streaming them. Now: the broker's group decides, the
resumed process publishes nothing for cameras it lost, nothing is `failed`, and every camera
ends streamed by exactly one owner.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from bus.contracts import CameraSpec
from bus.topics import Topics
from configs import load_settings
from sightline.testing.ingest_kit import register
from sightline.testing.ownership_kit import Owners, start_ingest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]
SESSION_S = 3.0


@pytest.mark.parametrize("skew_s", [0.0, 60.0, -60.0], ids=["clocks-agree", "survivor+60s", "survivor-60s"])
def test_a_paused_ingest_process_resumes_without_failing_or_doubling_any_camera(
    kafka_bootstrap: str, topic_prefix: str, short_clip: Path, tmp_path: Path, skew_s: float
) -> None:
    """With the surviving process's wall clock ±60 s off as well: liveness no longer reads it."""
    topics = Topics.from_config(load_settings(None, bus={"topic_prefix": topic_prefix}).bus)
    cams = {f"cam{i}" for i in range(4)}
    for cid in sorted(cams):
        register(kafka_bootstrap, topics, CameraSpec(id=cid, url=str(short_clip), realtime=True, loop=True))
    seen = Owners(kafka_bootstrap, topics)
    procs = {
        w: start_ingest(kafka_bootstrap, topic_prefix, w, tmp_path / f"{w}.log", SESSION_S) for w in "ab"
    }
    try:
        seen.until(lambda: seen.streaming_since(0, cams), 60, f"all cameras streaming; logs in {tmp_path}")
        seen.until(
            lambda: len(set().union(*seen.owners_since(time.monotonic() - 3).values())) == 2,
            40,
            "both processes own cameras",
        )
        victim = "a"
        lost = {c for c, o in seen.owners_since(time.monotonic() - 2).items() if o == {victim}}
        assert lost, "the paused process owned nothing: the test would prove nothing"

        procs[victim].send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        # Within a session timeout (+ two cooperative rounds) the other process streams them.
        took = seen.until(
            lambda: lost <= set(seen.owners_since(stopped + SESSION_S)), 30, "takeover of the paused cameras"
        )
        print(f"takeover {took - stopped:.1f}s after SIGSTOP (session timeout {SESSION_S}s)")
        assert took - stopped < SESSION_S + 10
        seen.watch(max(0.0, stopped + 20 - time.monotonic()))
        procs[victim].send_signal(signal.SIGCONT)
        resumed = time.monotonic()

        seen.watch(15)  # the resumed process rejoins; cooperative rounds may hand it a share back
        seen.until(lambda: seen.streaming_since(resumed, cams), 30, "every camera streamed after the resume")
        one_owner = {c: o for c, o in seen.owners_since(time.monotonic() - 3).items()}
        assert set(one_owner) == cams and all(len(o) == 1 for o in one_owner.values()), one_owner

        assert not seen.failed(), [(s.id, s.worker, s.reason) for s in seen.failed()]
        corrupt = [s for _, s in seen.status if "corrupt" in s.reason or "no decodable" in s.reason]
        assert not corrupt, [(s.id, s.worker, s.reason) for s in corrupt]
        # Nothing the resumed process published overlaps the new owner's stream for longer
        # than a handover takes (its gate was shut: its lease ran out while it was stopped).
        overlaps = seen.overlaps()
        assert max(overlaps.values()) <= SESSION_S, overlaps
        stale = [
            s for s in seen.frames if s.owner == victim and s.camera in lost and resumed <= s.at < resumed + 2
        ]
        assert not stale, f"{len(stale)} frames from the resumed process for cameras it had lost"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in procs.values():
            try:
                p.wait(15)
            except Exception:
                p.kill()
                p.wait(5)
        seen.close()
