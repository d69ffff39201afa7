"""The live camera registry and the split of cameras between ingest processes.

The control topic is read from the beginning (it is the registry); the status topic is
read from a little before now to learn which ingest processes are alive. Each camera
belongs to the live worker with the highest rendezvous hash, so when a worker joins or
dies only its share of cameras moves, and every worker computes the same answer alone.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from bus.contracts import CameraSpec, ControlMessage, StatusUpdate
from bus.kafka import poll
from bus.topics import Topics

log = logging.getLogger(__name__)


def owner(camera_id: str, workers: Iterable[str]) -> str | None:
    """Rendezvous (highest random weight) hashing: stable, and balanced without coordination."""
    best: tuple[int, str] | None = None
    for w in workers:
        h = int.from_bytes(hashlib.blake2b(f"{w}|{camera_id}".encode(), digest_size=8).digest(), "big")
        if best is None or (h, w) > best:
            best = (h, w)
    return best[1] if best else None


class Registry:
    """Cameras from the control topic, live ingest workers from the status topic's heartbeats."""

    def __init__(self, bootstrap: str, topics: Topics, me: str, ttl_s: float) -> None:
        self.me = me
        self.ttl_s = ttl_s
        self.cameras: dict[str, CameraSpec] = {}
        self.revisions: dict[str, int] = {}
        self._seen: dict[str, datetime] = {}
        self._topics = topics
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,  # every ingest process reads the whole registry
            client_id=f"{me}-registry",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            max_poll_records=500,
        )
        self._assign()

    def _assign(self) -> None:
        c = self._consumer
        parts: dict[str, list[TopicPartition]] = {}
        deadline = time.monotonic() + 30
        for topic in (self._topics.control, self._topics.status):
            while not (ids := c.partitions_for_topic(topic)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {topic} has no partitions")
                time.sleep(0.1)
            parts[topic] = [TopicPartition(topic, p) for p in sorted(ids)]
        c.assign(parts[self._topics.control] + parts[self._topics.status])
        c.seek_to_beginning(*parts[self._topics.control])
        # Heartbeats older than the TTL say nothing about who is alive now.
        since_ms = int((time.time() - self.ttl_s * 2) * 1000)
        found = c.offsets_for_times({tp: since_ms for tp in parts[self._topics.status]})
        for tp in parts[self._topics.status]:
            hit = found.get(tp)
            if hit is not None:
                c.seek(tp, hit.offset)
            else:
                c.seek_to_end(tp)

    def poll(self, timeout_ms: int) -> int:
        """Read what arrived; returns how many records were seen."""
        batches = poll(self._consumer, timeout_ms)
        n = 0
        for tp, records in batches.items():
            for r in records:
                n += 1
                if tp.topic == self._topics.control:
                    self._control(r.value)
                else:
                    self._status(r.value)
        return n

    def catch_up(self, stop: threading.Event, timeout_s: float = 15.0) -> None:
        """Read until a poll comes back empty, so the first reconcile sees the whole registry."""
        deadline = time.monotonic() + timeout_s
        while not stop.is_set() and time.monotonic() < deadline:
            if self.poll(500) == 0:
                return

    def _control(self, value: bytes) -> None:
        try:
            msg = ControlMessage.model_validate_json(value)
        except ValueError as exc:
            log.warning("ignoring a bad control message: %s", str(exc).splitlines()[0])
            return
        if msg.kind != "camera":
            return
        self.revisions[msg.id] = self.revisions.get(msg.id, 0) + 1
        if msg.op == "delete":
            self.cameras.pop(msg.id, None)
        elif msg.camera is not None:
            self.cameras[msg.id] = msg.camera

    def _status(self, value: bytes) -> None:
        if b'"ingest"' not in value:  # most status records are camera updates: skip the parse
            return
        try:
            st = StatusUpdate.model_validate_json(value)
        except ValueError:
            return
        if st.component != "ingest":
            return
        if st.state in ("stopped", "failed"):
            self._seen.pop(st.id, None)  # a clean exit hands its cameras over at once
        elif st.ts > self._seen.get(st.id, datetime.min.replace(tzinfo=UTC)):
            self._seen[st.id] = st.ts

    def saw(self, worker: str) -> None:
        self._seen[worker] = datetime.now(UTC)

    def live_workers(self) -> list[str]:
        now = datetime.now(UTC)
        alive = {w for w, ts in self._seen.items() if (now - ts).total_seconds() <= self.ttl_s}
        alive.add(self.me)
        return sorted(alive)

    def mine(self) -> set[str]:
        workers = self.live_workers()
        return {cid for cid in self.cameras if owner(cid, workers) == self.me}

    def close(self) -> None:
        self._consumer.close()
