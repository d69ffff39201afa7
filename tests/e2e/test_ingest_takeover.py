"""Two `sightline ingest` processes split the cameras; when one is killed, the other takes its cameras."""

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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
SESSION_S = 3.0


def test_a_killed_ingest_process_loses_its_cameras_to_the_survivor(
    kafka_bootstrap: str, topic_prefix: str, short_clip: Path, tmp_path: Path
) -> None:
    topics = Topics.from_config(load_settings(None, bus={"topic_prefix": topic_prefix}).bus)
    cams = {f"cam{i}" for i in range(4)}
    for cid in sorted(cams):
        register(kafka_bootstrap, topics, CameraSpec(id=cid, url=str(short_clip), realtime=True, loop=True))
    seen = Owners(kafka_bootstrap, topics)
    wa = start_ingest(kafka_bootstrap, topic_prefix, "wa", tmp_path / "wa.log", SESSION_S)
    wb = start_ingest(kafka_bootstrap, topic_prefix, "wb", tmp_path / "wb.log", SESSION_S)
    try:
        seen.until(
            lambda: (
                seen.streaming_since(0, cams)
                and {o for os_ in seen.owners_since(time.monotonic() - 3).values() for o in os_}
                == {"wa", "wb"}
            ),
            60,
            f"both workers streaming; logs in {tmp_path}",
        )
        now = seen.owners_since(time.monotonic() - 2)
        mine = {w: {c for c, o in now.items() if o == {w}} for w in ("wa", "wb")}

        wa.send_signal(signal.SIGKILL)  # no goodbye: the broker notices the silence
        wa.wait(10)
        killed = time.monotonic()
        took = seen.until(
            lambda: (
                mine["wa"] <= set(seen.owners_since(killed))
                and all(seen.owners_since(killed).get(c) == {"wb"} for c in mine["wa"])
            ),
            20,
            "takeover by wb",
        )
        print(f"takeover {took - killed:.1f}s after the kill (session timeout {SESSION_S} s)")
        assert took - killed < SESSION_S + 10
        for c in mine["wb"]:  # the survivor's own cameras were never stopped (cooperative rebalance)
            assert not any(t >= killed and s.id == c and s.state == "stopped" for t, s in seen.status)

        wb.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert wb.wait(15) == 0
        assert time.monotonic() - t0 < 8.0
    finally:
        for p in (wa, wb):
            if p.poll() is None:
                p.kill()
                p.wait(10)
        seen.close()
