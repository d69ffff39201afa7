"""Which cameras this ingest process owns, decided by Kafka's consumer-group protocol.

Ingest processes join one consumer group on a *slots* topic (`<prefix>.ingest_slots`, nothing is
ever written to it; its partitions are the unit of ownership). A camera belongs to slot
`blake2b(camera_id) % partitions`, and a process owns the cameras of the slots the group assigns
it. The broker decides who is alive (session timeout, heartbeats it receives) and hands slots
over; no process compares its clock with another's.

- Assignment uses the cooperative-sticky assignor (KIP-429): a join or a leave moves only the
  slots that must move; everyone else keeps streaming through the rebalance. A moving slot is
  revoked from its old owner in one round and given to the new owner in the next, so the two
  never hold it at once.
- Losing a slot (revocation, or the member being expelled after a pause) closes the publishing
  gate for its cameras *at once*, inside the rebalance callback, before anything else is
  published; the main loop then stops those cameras quietly.
- A process that was paused cannot know it was expelled until the broker answers its next
  heartbeat. Until then it must not publish: the gate also requires a *lease*, the time since
  the last heartbeat the coordinator answered (measured from when that heartbeat was sent, on
  this host's monotonic clock) to be under the session timeout less one heartbeat interval.
  The broker can only have expelled us after a full session timeout without heartbeats, so
  while the lease holds we are still a member.
- Every frame carries the epoch (the group generation in which its publisher was given the
  slot); the analyzer drops frames below the highest epoch it saw for a camera, so even a frame
  that escaped the gate cannot be taken for the current owner's.

The lease is `bus.kafka.GroupLease` (the analyzer uses the same one).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.structs import TopicPartition

from bus.kafka import GroupLease, ensure_topics, poll
from configs.settings import BusConfig, IngestConfig

log = logging.getLogger(__name__)


def slot_of(camera_id: str, slots: int) -> int:
    """The slot (partition of the slots topic) a camera belongs to: the same on every host."""
    digest = hashlib.blake2b(camera_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % slots


def slots_topic(bus: BusConfig) -> str:
    return bus.topic("ingest_slots")


def group_id(bus: BusConfig, cfg: IngestConfig) -> str:
    return cfg.group_id or f"{bus.topic_prefix}-ingest"


class Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    """This process's membership in the ingest group, and the slots (so cameras) it holds."""

    def __init__(
        self,
        bootstrap: str,
        bus: BusConfig,
        cfg: IngestConfig,
        me: str,
        *,
        on_revoke: Callable[[], None] | None = None,
    ) -> None:
        self.me = me
        self.topic = slots_topic(bus)
        ensure_topics(bootstrap, [self.topic], cfg.slots, bus.replication)
        session_ms = int(cfg.session_timeout_s * 1000)
        heartbeat_ms = max(100, session_ms // 4)
        self._on_revoke = on_revoke
        self._lock = threading.Lock()
        self._owned: dict[int, int] = {}  # slot -> epoch (generation it was given to us in)
        self.revocations = 0
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id(bus, cfg),
            client_id=f"{me}-slots",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=heartbeat_ms,
            # Also the rebalance timeout: how long a join waits for members that went quiet.
            max_poll_interval_ms=max(session_ms * 2, 20_000),
            partition_assignment_strategy=(CooperativeStickyAssignor,),
            fetch_max_wait_ms=100,
        )
        self.lease = GroupLease(self.consumer)
        self.slots = self._partitions(self.consumer)
        self.consumer.subscribe([self.topic], listener=self)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._drive, name="ingest-group", daemon=True)
        self._thread.start()

    def _drive(self) -> None:
        """Poll back to back, in a thread that owns the consumer.

        kafka-python 3.0 drops a join whose JoinGroup/SyncGroup finished while no `poll` was
        waiting on it (the next poll finds the task done and sends a fresh JoinGroup). The broker
        holds a JoinGroup for seconds, so a loop that polls in short slices between other work
        rejoins again and again; a thread that is always inside `poll` takes every answer.
        """
        try:
            while not self._closing.is_set():
                poll(self.consumer, 500)
        finally:
            try:
                self.consumer.close()  # leaving: our slots are handed over in the next round
            except Exception:  # pragma: no cover - closing with the broker gone
                log.warning("leaving the ingest group failed", exc_info=True)

    def _partitions(self, consumer: KafkaConsumer) -> int:
        deadline = time.monotonic() + 30
        while not (ids := consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {self.topic} has no partitions")
            time.sleep(0.1)
        return len(ids)

    # ---- the group's callbacks (kafka-python's IO thread: quick, no blocking work) -----------
    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        epoch = int(self.consumer.group_metadata().generation_id)
        slots = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
        with self._lock:
            for s in slots:
                self._owned[s] = epoch
        self.lease.renew()
        log.info("ingest %s: given slots %s in generation %d", self.me, slots, epoch)

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._drop(revoked, "revoked")

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self._drop(lost, "lost (this process was expelled from the group)")

    def _drop(self, tps: Iterable[TopicPartition], why: str) -> None:
        slots = sorted(tp.partition for tp in tps if tp.topic == self.topic)
        with self._lock:
            for s in slots:
                self._owned.pop(s, None)
            self.revocations += bool(slots)
        log.info("ingest %s: slots %s %s", self.me, slots, why)
        if slots and self._on_revoke is not None:
            try:
                self._on_revoke()  # frames already sent reach the broker before the slot moves
            except Exception:
                log.warning("flush on revocation failed", exc_info=True)

    # ---- what the rest of ingest asks --------------------------------------------------------
    def slot(self, camera_id: str) -> int:
        return slot_of(camera_id, self.slots)

    def mine(self, camera_ids: Iterable[str]) -> set[str]:
        """Cameras whose slot the group gave us (even while the lease is being renewed)."""
        with self._lock:
            owned = set(self._owned)
        return {c for c in camera_ids if self.slot(c) in owned}

    def epoch(self, camera_id: str) -> int | None:
        """The epoch to stamp on this camera's messages, or None: do not publish for it now."""
        with self._lock:
            epoch = self._owned.get(self.slot(camera_id))
        if epoch is None or not self.lease_held():
            return None
        return epoch

    def wait_epoch(self, camera_id: str, poll_s: float = 0.05) -> int | None:
        """Like `epoch`, but while the camera's slot is still ours and only the lease has run out
        (a broker outage, a slow rejoin), wait for the group to settle instead of dropping: a frame
        of a file must not be lost to an outage the broker recovers from. None once the slot is
        gone (revoked or lost) or the process is closing."""
        while not self._closing.is_set():
            with self._lock:
                epoch = self._owned.get(self.slot(camera_id))
            if epoch is None:
                return None
            if self.lease_held():
                return epoch
            time.sleep(poll_s)
        return None

    def lease_held(self) -> bool:
        return self.lease.held()

    def owned_slots(self) -> dict[int, int]:
        with self._lock:
            return dict(self._owned)

    def close(self, timeout_s: float = 10.0) -> None:
        """Leave the group: our slots are handed over in the next round, not after a timeout."""
        self._closing.set()
        self._thread.join(timeout_s)
