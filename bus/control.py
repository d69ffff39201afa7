"""The control topic as state: which cameras and queries exist now.

Every process that follows the control topic reads it from the beginning at
start (it is small and compacted in production) and applies each message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka.structs import TopicPartition

from bus.contracts import CameraSpec, ControlMessage, QuerySpec
from bus.kafka import PoisonMessage, decode, make_consumer, poll

log = logging.getLogger(__name__)


@dataclass
class ControlState:
    cameras: dict[str, CameraSpec] = field(default_factory=dict)
    queries: dict[str, QuerySpec] = field(default_factory=dict)

    def apply(self, msg: ControlMessage) -> None:
        if msg.kind not in ("camera", "query"):
            return  # zones, lines and rules are the rules process's (rules.control)
        table: dict[str, CameraSpec] | dict[str, QuerySpec] = (
            self.cameras if msg.kind == "camera" else self.queries
        )
        if msg.op == "delete":
            table.pop(msg.id, None)
        elif msg.kind == "camera" and msg.camera is not None:
            self.cameras[msg.id] = msg.camera
        elif msg.query is not None:
            self.queries[msg.id] = msg.query

    def queries_for(self, camera_id: str) -> list[QuerySpec]:
        return sorted((q for q in self.queries.values() if q.applies_to(camera_id)), key=lambda q: q.id)


class ControlFollower:
    """Reads the control topic from the beginning in a thread and calls `on_message` for each message."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        on_message: Callable[[ControlMessage], None],
        *,
        idle_s: float = 0.5,
    ) -> None:
        self.bootstrap, self.topic, self.on_message, self.idle_s = bootstrap, topic, on_message, idle_s
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"control:{topic}", daemon=True)
        self.errors = 0

    def start(self, wait_s: float = 10.0) -> ControlFollower:
        self._thread.start()
        self.caught_up.wait(wait_s)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        consumer = make_consumer(self.bootstrap, [], None, client_id="sightline-control")
        try:
            parts = None
            while parts is None and not self._stop.is_set():
                parts = consumer.partitions_for_topic(self.topic)
                if parts is None:
                    time.sleep(0.2)
            tps = [TopicPartition(self.topic, p) for p in sorted(parts or ())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            last_data = time.monotonic()
            while not self._stop.is_set():
                batches = poll(consumer, 200)
                for records in batches.values():
                    for r in records:
                        self._apply(r)
                if batches:
                    last_data = time.monotonic()
                elif time.monotonic() - last_data >= self.idle_s:
                    # No end_offsets here: it is unreliable on Tansu. A quiet topic counts as caught up.
                    self.caught_up.set()
        except Exception:  # a dying follower must say so, not hang silently
            log.exception("control follower stopped")
            self.caught_up.set()
        finally:
            consumer.close()

    def _apply(self, record: object) -> None:
        try:
            msg = decode(record, ControlMessage)
        except PoisonMessage as exc:
            self.errors += 1
            log.warning("ignoring bad control message: %s", exc)
            return
        try:
            self.on_message(msg)
        except Exception:
            self.errors += 1
            log.exception("control message handler failed for %s", msg.key)


def read_control_state(bootstrap: str, topic: str, wait_s: float = 10.0) -> ControlState | None:
    """The control topic read once from the beginning; None if it could not be read in `wait_s`.

    For a writer that needs what only the topic holds (the API: a camera's URL with its
    credentials, which the store keeps masked)."""
    state = ControlState()
    follower = ControlFollower(bootstrap, topic, state.apply, idle_s=0.3)
    follower.start(wait_s)
    caught_up = follower.caught_up.is_set()
    follower.stop()
    return state if caught_up else None
