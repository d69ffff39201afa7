"""Two `sightline ingest` processes split the cameras; when one is killed, the other takes its cameras."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.contracts import CameraSpec, StatusUpdate
from bus.topics import Topics
from configs import load_settings
from ingest.registry import owner
from sightline.testing.ingest_kit import TopicReader, register, statuses

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]


def _ingest(bootstrap: str, prefix: str, worker: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SIGHTLINE_BUS__TOPIC_PREFIX": prefix,
        "SIGHTLINE_INGEST__WORKER_ID": worker,
        "SIGHTLINE_INGEST__WORKER_HEARTBEAT_S": "0.5",
        "SIGHTLINE_INGEST__WORKER_TTL_S": "3",
        "SIGHTLINE_INGEST__STATUS_INTERVAL_S": "0.5",
    }
    out = open(log, "wb")  # noqa: SIM115 - handed to the child
    cmd = [sys.executable, "-m", "sightline.cli", "ingest", "--bootstrap", bootstrap]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _pick_cameras(workers: list[str], per_worker: int) -> list[str]:
    """Camera ids that rendezvous hashing spreads over both workers, so the test cannot pass vacuously."""
    picked: dict[str, list[str]] = {w: [] for w in workers}
    i = 0
    while any(len(v) < per_worker for v in picked.values()):
        cid = f"cam{i}"
        w = owner(cid, workers)
        assert w is not None
        if len(picked[w]) < per_worker:
            picked[w].append(cid)
        i += 1
    return sorted(c for v in picked.values() for c in v)


def test_a_killed_ingest_process_loses_its_cameras_to_the_survivor(
    kafka_bootstrap: str, topic_prefix: str, short_clip: Path, tmp_path: Path
) -> None:
    topics = Topics.from_config(load_settings(None, bus={"topic_prefix": topic_prefix}).bus)
    cams = _pick_cameras(["wa", "wb"], 2)
    for cid in cams:
        register(kafka_bootstrap, topics, CameraSpec(id=cid, url=str(short_clip), realtime=True, loop=True))
    status = TopicReader(kafka_bootstrap, topics.status)
    seen: list[tuple[float, StatusUpdate]] = []

    def until(check: object, timeout_s: float, what: str) -> float:
        deadline = time.monotonic() + timeout_s
        while not check():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"timed out: {what}; logs in {tmp_path}"
            now = time.monotonic()
            seen.extend((now, s) for s in statuses(status.records(100)))
        return time.monotonic()

    def streaming(cid: str, worker: str, since: float = 0.0) -> bool:
        return any(
            t >= since and s.id == cid and s.worker == worker and s.state == "streaming" for t, s in seen
        )

    wa = _ingest(kafka_bootstrap, topic_prefix, "wa", tmp_path / "wa.log")
    wb = _ingest(kafka_bootstrap, topic_prefix, "wb", tmp_path / "wb.log")
    try:
        mine = {w: [c for c in cams if owner(c, ["wa", "wb"]) == w] for w in ("wa", "wb")}
        until(
            lambda: all(streaming(c, w) for w, cs in mine.items() for c in cs), 40, "both workers streaming"
        )

        wa.send_signal(signal.SIGKILL)  # no goodbye: wb must notice the silence
        wa.wait(10)
        killed = time.monotonic()
        took = until(lambda: all(streaming(c, "wb", killed) for c in mine["wa"]), 20, "takeover by wb")
        print(f"takeover {took - killed:.1f}s after the kill (ttl 3 s)")
        assert took - killed < 3.0 + 7.0
        for c in mine["wb"]:  # the survivor's own cameras were never touched
            assert not any(t >= killed and s.id == c and s.state == "stopped" for t, s in seen)

        wb.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert wb.wait(15) == 0
        assert time.monotonic() - t0 < 8.0
    finally:
        for p in (wa, wb):
            if p.poll() is None:
                p.kill()
                p.wait(10)
        status.close()
