"""What the benches measure and with what: the plan, the observations, and the probes that make them.

It runs the real stack: a Kafka-compatible broker (embedded Tansu unless `--bootstrap`), the
scripted OpenAI-compatible GLM server (colour mode: it boxes the red figure it is shown), and
`sightline ingest | analyze | sink` as child processes — the entry points production runs —
on private topics and consumer groups. N cameras play a generated clip paced like live cameras.

Latency is measured from what the system already records, joined by the harness:
  capture   FrameMeta.wall_ts of the frame that caused the event
  published the frames record's Kafka timestamp (set by the ingest producer at send)
  produced  the detections record's Kafka timestamp (set by the analyzer at send)
  engine    ObjectEvent.latency_ms (the engine call, measured by the analyzer's client)
  stored    events.received_at (set by the sink when it writes the row)
The probes only read topics (group-less, so they take nothing from the services), the store and
/proc. `sightline.bench.stack` runs the stack with them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.structs import TopicPartition
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from bus.contracts import ControlMessage, ObjectEvent, QuerySpec, StatusUpdate
from bus.kafka import Producer, decode, decode_end_of_stream, decode_frame
from bus.topics import Topics
from sightline.runtime import _die_with_parent
from sinks import tables
from sinks.db import create_engine

VERBS = ("ingest", "analyze", "sink")
RED = (30, 30, 220)  # BGR: the colour the scripted server boxes for "people in red"
QUERY = QuerySpec(id="red", text="people in red")


class BenchPlan(BaseModel):
    """What one run does; the verbs build it from their arguments and their own defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cameras: int = Field(16, ge=1)
    seconds: float = Field(20.0, gt=0, description="play time after the first event, warm-up included")
    warmup_s: float = Field(3.0, ge=0, description="the first part of `seconds`, not measured")
    engine_latency_ms: float = Field(0.0, ge=0)
    concurrency: int = Field(8, ge=1)
    sample_fps: float = Field(2.0, gt=0)
    video: str | None = None
    resource_every_s: float = Field(5.0, gt=0)
    progress_every_s: float = Field(10.0, gt=0)
    start_timeout_s: float = Field(120.0, gt=0)
    drain_timeout_s: float = Field(60.0, ge=0)


@dataclass
class RunData:
    """Everything a run observed; `sightline.bench.stats` turns it into figures."""

    plan: BenchPlan
    run_dir: Path
    window: tuple[float, float] = (0.0, 0.0)  # wall epoch seconds: the measured span
    published: dict[tuple[str, float], float] = field(default_factory=dict)  # (camera, capture) -> publish
    frame_records: int = 0  # frames topic records, end-of-stream markers included
    produced: dict[str, float] = field(default_factory=dict)  # event_id -> first produce time
    cameras: dict[str, StatusUpdate] = field(default_factory=dict)  # last status per camera
    analyzers: dict[str, StatusUpdate] = field(default_factory=dict)  # last status per analyzer worker
    calls: list[tuple[float, int]] = field(default_factory=list)  # (wall, engine requests so far)
    max_in_flight: int = 0
    resources: list[dict[str, Any]] = field(default_factory=list)  # {t, proc, pid, rss, fds, threads, cpu_s}
    loadavg: list[float] = field(default_factory=list)  # the machine's 1-min load, at each resource sample
    stored: list[dict[str, Any]] = field(default_factory=list)  # event rows: payload + received_at
    committed: int = 0
    drained: bool = False
    exit_codes: dict[str, int | None] = field(default_factory=dict)


class Recorder(threading.Thread):
    """Reads frames, detections and status from the beginning, without a group, and keeps the times."""

    def __init__(self, bootstrap: str, topics: Topics, data: RunData) -> None:
        super().__init__(name="bench-recorder", daemon=True)
        self.topics, self.data = topics, data
        self.first_event: float | None = None
        self.halt = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=16_777_216,
        )
        tps: list[TopicPartition] = []
        deadline = time.monotonic() + 15
        for topic in (topics.frames, topics.detections, topics.status):
            while not (parts := self.consumer.partitions_for_topic(topic)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no partitions for {topic}")
                time.sleep(0.05)
            tps += [TopicPartition(topic, p) for p in parts]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                for tp, records in self.consumer.poll(timeout_ms=200).items():
                    for r in records:
                        self._record(tp.topic, r)
        finally:
            self.consumer.close()

    def _record(self, topic: str, r: Any) -> None:
        d = self.data
        if topic == self.topics.frames:
            d.frame_records += 1
            if decode_end_of_stream(r) is None:
                meta, _ = decode_frame(r)
                d.published.setdefault((meta.camera_id, meta.wall_ts.timestamp()), r.timestamp / 1000)
        elif topic == self.topics.detections:
            ev = decode(r, ObjectEvent)
            d.produced.setdefault(ev.event_id, r.timestamp / 1000)  # a redelivery keeps the first time
            if self.first_event is None:
                self.first_event = time.time()
        else:
            st = decode(r, StatusUpdate)
            if st.component == "camera":
                d.cameras[st.id] = st
            elif st.component == "analyzer":
                d.analyzers[st.id] = st


class Children:
    """`python -m sightline.cli VERB --config effective.yaml`, one log file each."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config, self.logs = config, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # The effective config already holds what SIGHTLINE_* said; left in the environment it
        # would beat the file and undo the bench's private topics and groups.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}

    def start(self, verb: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{verb}.log", "ab") as out:
            self.procs[verb] = subprocess.Popen(
                [sys.executable, "-m", "sightline.cli", verb, "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def dead(self) -> list[str]:
        return [v for v, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> dict[str, int | None]:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for verb, p in self.procs.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            codes[verb] = p.returncode
        return codes

    def tail(self, lines: int = 15) -> str:
        out = []
        for f in sorted(self.logs.glob("*.log")):
            out.append(f"==== {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def proc_sample(pid: int) -> dict[str, Any] | None:
    """RSS bytes, open fds, threads and CPU seconds used so far, from /proc; None once it is gone."""
    try:
        out: dict[str, Any] = {"pid": pid, "rss": 0, "threads": 0}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1]) * 1024
                elif line.startswith("Threads:"):
                    out["threads"] = int(line.split()[1])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        return out
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def send_control(bootstrap: str, topics: Topics, msgs: list[ControlMessage], gap_s: float = 0.0) -> None:
    producer = Producer(bootstrap, client_id="sightline-bench")
    try:
        for msg in msgs:
            producer.send(topics.control, msg.key, msg)
            if gap_s:
                producer.flush()
                time.sleep(gap_s)
        producer.flush()
    finally:
        producer.close()


def committed(bootstrap: str, group: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sightline-bench-admin")
    try:
        offsets = admin.list_group_offsets(group)
        offsets = offsets.get(group, offsets)  # kafka-python 3 answers {group: {tp: offset}}
        return sum(
            om.offset
            for tp, om in offsets.items()
            if isinstance(tp, TopicPartition) and tp.topic == topic and om.offset >= 0
        )
    finally:
        admin.close()


def stored_rows(store_url: str, cameras: list[str]) -> list[dict[str, Any]]:
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(tables.events.c.payload, tables.events.c.received_at).where(
                    tables.events.c.camera_id.in_(cameras)
                )
            ).all()
    finally:
        engine.dispose()
    return [{**json.loads(p), "received_at": float(r)} for p, r in rows]


def stored_count(store_url: str, cameras: list[str]) -> int:
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            q = select(func.count()).select_from(tables.events).where(tables.events.c.camera_id.in_(cameras))
            return int(conn.execute(q).scalar_one())
    finally:
        engine.dispose()
