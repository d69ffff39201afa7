"""The live camera registry: every ingest process reads the whole control topic from its start.

Which of these cameras this process runs is not decided here but by the consumer-group
protocol (`ingest.ownership`).
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from bus.contracts import CameraSpec, ControlMessage
from bus.kafka import poll
from bus.topics import Topics

log = logging.getLogger(__name__)


class Registry:
    """Cameras (and a revision per camera, bumped by every control message about it)."""

    def __init__(self, bootstrap: str, topics: Topics, me: str) -> None:
        self.me = me
        self.cameras: dict[str, CameraSpec] = {}
        self.revisions: dict[str, int] = {}
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
        deadline = time.monotonic() + 30
        while not (ids := c.partitions_for_topic(self._topics.control)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {self._topics.control} has no partitions")
            time.sleep(0.1)
        parts = [TopicPartition(self._topics.control, p) for p in sorted(ids)]
        c.assign(parts)
        c.seek_to_beginning(*parts)

    def poll(self, timeout_ms: int) -> int:
        """Read what arrived; returns how many records were seen."""
        batches = poll(self._consumer, timeout_ms)
        n = 0
        for records in batches.values():
            for r in records:
                n += 1
                self._control(r.value)
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

    def close(self) -> None:
        self._consumer.close()
