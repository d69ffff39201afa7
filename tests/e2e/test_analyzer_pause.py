"""A paused analyzer resuming after its partitions moved produces no event for them.

Two analyzers share the frames partitions; the engine answers slowly, so each is always holding
a batch of frames with a call in flight. One is paused (SIGSTOP) for three session timeouts —
the other takes all partitions — and resumed: its call completes, and the batch it holds would
be produced as events for partitions that are no longer its own. Its group lease has run out,
so it drops the batch unproduced and uncommitted instead. Events carry the producing worker in a
header, which is how the test tells whose they are.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

from bus.contracts import CameraSpec, QuerySpec
from bus.kafka import PRODUCER_HEADER, header
from sightline.samples import Figure
from sightline.testing.ingest_kit import TopicReader
from sightline.testing.scripted_server import ScriptedServer

from stackkit import Stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]
SESSION_S = 6.0  # bus.kafka.make_consumer's default for the analyzer group
PARTITIONS = 3  # bus.partitions' default


def _one_camera_per_partition() -> list[str]:
    """Camera ids that Kafka's default partitioner puts on every frames partition, so both analyzers
    have work whatever the split (the test would prove nothing if one held no camera)."""
    picked: dict[int, str] = {}
    for i in range(100):
        cid = f"cam-{i}"
        picked.setdefault((murmur2(cid.encode()) & 0x7FFFFFFF) % PARTITIONS, cid)
    return [picked[p] for p in range(PARTITIONS)]


def test_a_paused_analyzer_resuming_after_a_rebalance_produces_nothing_for_lost_partitions(
    kafka_bootstrap: str, tmp_path: Path, red_figure_clip: tuple[Path, Figure]
) -> None:
    clip, _ = red_figure_clip
    # Every answer has a box (so every answered frame yields an event), and each takes 3 s: the
    # analyzers are always inside a batch, whatever moment the pause hits.
    scenario = {"default": {"text": "person", "boxes": [{"label": "person", "bbox": [100, 200, 300, 900]}]}}
    with ScriptedServer({**scenario, "latency_s": 3.0}) as glm:
        stack = Stack(
            kafka_bootstrap,
            f"apause{int(time.time()) % 100000}",
            tmp_path,
            SIGHTLINE_ENGINE__TYPE="openai",
            SIGHTLINE_ENGINE__BASE_URL=glm.base_url,
            SIGHTLINE_ENGINE__API_KEY="test",
            SIGHTLINE_INGEST__SAMPLE_FPS="1",
            SIGHTLINE_ANALYZER__TRACKING__MIN_HITS="1",
            SIGHTLINE_ANALYZER__TRACKING__UPDATE_EVERY_S="0",
        )
        events = TopicReader(kafka_bootstrap, stack.topics.detections)
        seen: list[tuple[float, str, int]] = []  # (arrival, producing worker, partition)

        def pump() -> None:
            now = time.monotonic()
            for r in events.records(100):
                who = header(r, PRODUCER_HEADER)
                seen.append((now, who.decode() if who else "", r.partition))

        def producers_since(t: float) -> set[str]:
            pump()
            return {w for at, w, _ in seen if at >= t}

        try:
            a = stack.start("analyze")
            stack.start("analyze")
            time.sleep(3.0)
            stack.start("ingest")
            query = QuerySpec(id="red", text="people in red")
            for cam in _one_camera_per_partition():
                stack.register(CameraSpec(id=cam, url=str(clip), realtime=True, loop=True), query)
            wait_for(lambda: len(producers_since(0)) == 2, 90, "events from both analyzers", stack)
            worker_a = _worker(tmp_path / "logs" / "analyze-0.log")
            assert worker_a in producers_since(0)

            a.send_signal(signal.SIGSTOP)
            paused = time.monotonic()
            time.sleep(3 * SESSION_S)
            # Meanwhile the other analyzer took every partition and answers for the cameras.
            assert worker_a not in producers_since(paused + 1.0)
            assert producers_since(paused + SESSION_S), "the other analyzer produced nothing meanwhile"
            a.send_signal(signal.SIGCONT)
            resumed = time.monotonic()
            time.sleep(2.5)  # its in-flight calls complete now; a rejoin takes longer than this
            pump()
            stale = [(round(at - resumed, 2), p) for at, w, p in seen if w == worker_a and at >= resumed]
            assert not stale, f"the resumed analyzer produced events for partitions it lost: {stale}"
            log = (tmp_path / "logs" / "analyze-0.log").read_text()
            assert "group lease lapsed while working" in log or "group lease lost while working" in log, (
                "the paused analyzer held no batch: proved nothing"
            )
            wait_for(
                lambda: a.poll() is None and bool(producers_since(resumed + 3)), 60, "work goes on", stack
            )
            assert a.poll() is None, "the resumed analyzer must carry on, not crash on a refused commit"
        finally:
            stack.stop()
            events.close()


def _worker(log: Path) -> str:
    for line in log.read_text().splitlines():
        if '"worker": "' in line:
            return line.split('"worker": "', 1)[1].split('"', 1)[0]
    raise AssertionError(f"no worker id in {log}")
