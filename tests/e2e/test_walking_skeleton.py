"""Walking skeleton: a recorded video becomes box events through a real broker and the real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from bus.broker import free_port
from bus.contracts import CameraSpec, ObjectEvent, QuerySpec

from stackkit import Stack, wait_for

pytestmark = pytest.mark.e2e


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20) -> list[dict[str, object]]:
    """A plain kafka-python consumer, as a user would write it."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out: list[dict[str, object]] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                out += [json.loads(r.value) for r in records]
        return out
    finally:
        consumer.close()


def test_recorded_video_becomes_events_in_store_api_and_topic(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, vtest_10s: Path
) -> None:
    stack = Stack(kafka_bootstrap, topic_prefix, tmp_path / "data").start_all()
    try:
        stack.register(
            CameraSpec(id="lobby", url=str(vtest_10s), realtime=False), QuerySpec(id="people", text="people")
        )

        def every_track_ended() -> bool:
            # A track may end mid-clip (the person left), so one end event is not the end of
            # the file; the file's end closes every track still open.
            seen = stack.events()
            ends = {e["track_id"] for e in seen if e["phase"] == "end"}
            return bool(ends) and ends >= {e["track_id"] for e in seen if e["phase"] == "start"}

        wait_for(every_track_ended, 90, "an end event for every started track", stack)
        time.sleep(1.0)  # let the sink drain what is in flight
        events = stack.events()
    finally:
        codes = stack.stop()
    assert all(code in (0, -15) for code in codes.values()), (
        codes,
        stack.logs(),
    )  # TODO serve: uvicorn re-raises SIGTERM

    phases = {e["phase"] for e in events}
    assert {"start", "end"} <= phases
    for e in events:
        ObjectEvent.model_validate(e)  # exactly the contract
        assert e["engine"] == "baseline" and e["camera_id"] == "lobby" and e["query_id"] == "people"
        x1, y1, x2, y2 = e["bbox"]
        assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576, e["bbox"]  # original-frame pixels
        assert e["bbox_norm"] == pytest.approx([x1 / 768, y1 / 576, x2 / 768, y2 / 576], abs=1e-4)
        assert 0 <= e["pts_s"] <= 10.0
    starts = {e["track_id"] for e in events if e["phase"] == "start"}
    ends = {e["track_id"] for e in events if e["phase"] == "end"}
    assert ends == starts  # the end of the file ends every track it started

    on_topic = consume_all(kafka_bootstrap, stack.topics.detections, len(events))
    assert {e["event_id"] for e in on_topic} == {e["event_id"] for e in events}
    assert len(on_topic) == len(events)  # nothing duplicated on the way


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid = int(fields[1])
        child = int(status.parent.name)
        if ppid == pid:
            out.add(child)
    for child in list(out):
        out |= _descendants(child)
    return out


def test_up_serves_events_within_60s_and_ctrl_c_leaves_nothing_running(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SIGHTLINE_BUS__EMBEDDED__PORT": "0"}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sightline.cli",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        import httpx

        def has_events() -> bool:
            try:
                return bool(
                    httpx.get(f"http://127.0.0.1:{port}/api/events?limit=5", timeout=2).json()["items"]
                )
            except (httpx.HTTPError, ValueError, KeyError):
                return False

        wait_for(has_events, 60, "events from the sample camera")
        tree = _descendants(up.pid)
        assert len(tree) >= 5  # broker + ingest + analyze + sink + serve
        first = httpx.get(f"http://127.0.0.1:{port}/api/events?limit=5", timeout=2).json()["items"][0]
        assert first["engine"] == "baseline" and first["camera_id"] == "sample"
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=30)
    assert up.returncode == 0, out
    assert "Sightline is up" in out and "Kafka:" in out
    time.sleep(0.5)
    alive = {p for p in tree if Path(f"/proc/{p}").exists() and "zombie" not in _state(p)}
    assert not alive, f"still running after Ctrl-C: {alive}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"
