"""`sightline rules`: detections → alerts, in its own consumer group, at-least-once, no alert twice.

Per poll batch: evaluate each camera's events in order, produce the alerts and one checkpoint per
camera touched (the evaluator's state for that camera plus the offset it covers, on
`rules_state`, same partition number as the detections), flush, and only then commit. A process
that starts (or takes over a partition) restores the checkpoints and skips the events they
already cover, so after a SIGKILL it continues exactly where the last one was: an alert that
was produced but not committed is produced again with the same id, and the store keeps one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Any, Literal

from kafka import ConsumerRebalanceListener
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata, TopicPartition

from bus import checkpoints
from bus.contracts import Alert, ControlMessage, ObjectEvent, StatusUpdate
from bus.control import ControlFollower
from bus.kafka import (
    PoisonMessage,
    Producer,
    commit_offsets,
    consumer_lag,
    dead_letter,
    decode,
    ensure_topics,
    make_consumer,
    poll,
    wait_for_broker,
)
from bus.redact import install_log_redaction
from bus.topics import Topics
from configs.settings import Settings
from lifecycle.metrics import set_consumer_lag
from lifecycle.process import require_bootstrap, worker_id
from rules import metrics
from rules.book import RuleBook
from rules.evaluator import Evaluator

log = logging.getLogger(__name__)
STATUS_EVERY_S = 5.0


class RulesWorker(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, settings: Settings, stop: threading.Event, book: RuleBook) -> None:
        self.settings, self.stop, self.book = settings, stop, book
        self.bootstrap = require_bootstrap(settings)
        self.topics = Topics.from_config(settings.bus)
        self.worker = worker_id("rules", None)
        self.evaluator = Evaluator(*book.specs())
        self.inbox: queue.Queue[ControlMessage] = queue.Queue()
        self.producer = Producer(self.bootstrap, client_id=self.worker)
        self.covered: dict[str, tuple[int, int]] = {}  # camera → (partition, last offset in its checkpoint)
        self.camera_partition: dict[str, int] = {}
        self.counters: Counter[str] = Counter()
        self.consumer: Any = None
        self._last_status = 0.0

    # ---- rebalance ---------------------------------------------------------------------------
    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self.topics.detections}
        for cam in [c for c, p in self.camera_partition.items() if p in gone]:
            self.evaluator.cameras.pop(cam, None)
            self.covered.pop(cam, None)
            del self.camera_partition[cam]

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        parts = [tp.partition for tp in assigned if tp.topic == self.topics.detections]
        states = checkpoints.restore(
            self.bootstrap, self.producer, self.topics.rules_state, parts, client_id="sightline-rules-restore"
        )
        for cam, st in states.items():
            self.evaluator.restore(cam, st["state"])
            self.covered[cam] = (int(st["partition"]), int(st["offset"]))
            self.camera_partition[cam] = int(st["partition"])
        log.info("assigned partitions %s; restored %d camera checkpoints", parts, len(states))

    # ---- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        wait_for_broker(self.bootstrap)
        ensure_topics(
            self.bootstrap, self.topics.all(), self.settings.bus.partitions, self.settings.bus.replication
        )
        follower = ControlFollower(self.bootstrap, self.topics.control, self.inbox.put).start()
        self._drain_control()
        self.consumer = make_consumer(
            self.bootstrap, [], self.settings.rules.group_id, client_id=self.worker, max_poll_records=256
        )
        self.consumer.subscribe([self.topics.detections], listener=self)
        self._status("running")
        try:
            while not self.stop.is_set():
                self._drain_control()
                batch = poll(self.consumer, 200)
                records = sorted(
                    (r for rs in batch.values() for r in rs), key=lambda r: (r.partition, r.offset)
                )
                if records:
                    self.handle(records)
                set_consumer_lag(self.settings.rules.group_id, consumer_lag(self.consumer))
                if time.monotonic() - self._last_status >= STATUS_EVERY_S:
                    self._status("running")
            return 0
        except Exception as exc:
            log.exception("rules worker failed")
            self._status("failed", f"{type(exc).__name__}: {exc}")
            return 1
        finally:
            follower.stop()
            self._status("stopped")
            self.consumer.close()
            self.producer.flush()
            self.producer.close()

    def _drain_control(self) -> None:
        changed = False
        while True:
            try:
                msg = self.inbox.get_nowait()
            except queue.Empty:
                break
            changed |= self.book.apply(msg)
        if changed:
            self.evaluator.set_rules(*self.book.specs())
            for rule_id, reason in sorted(self.evaluator.disabled.items()):
                log.warning("rule %s is disabled: %s", rule_id, reason)

    def handle(self, records: list[ConsumerRecord]) -> None:
        alerts: list[Alert] = []
        touched: dict[str, tuple[int, int]] = {}
        poisoned = 0
        for r in records:
            try:
                e = decode(r, ObjectEvent)
            except PoisonMessage as exc:
                dead_letter(self.producer, self.topics.deadletter, r, str(exc), self.worker)
                poisoned += 1
                continue
            done = self.covered.get(e.camera_id)
            if done is not None and done[0] == r.partition and r.offset <= done[1]:
                self.counters["skipped_covered"] += 1  # already in the restored checkpoint
                continue
            alerts += self.evaluator.feed(e)
            touched[e.camera_id] = (r.partition, r.offset)
            self.camera_partition[e.camera_id] = r.partition
        for a in alerts:
            self.producer.send(self.topics.alerts, a.camera_id, a)
        for cam, (partition, offset) in touched.items():
            state = {"partition": partition, "offset": offset, "state": self.evaluator.state_of(cam)}
            checkpoints.write(self.producer, self.topics.rules_state, partition, cam, state)
            self.covered[cam] = (partition, offset)
        self.producer.flush()  # alerts and checkpoints are durable before the offsets move on
        offsets = {
            TopicPartition(r.topic, r.partition): OffsetAndMetadata(r.offset + 1, "", -1) for r in records
        }
        commit_offsets(self.consumer, offsets)
        self.counters["events"] += len(records) - poisoned
        metrics.EVENTS.inc(len(records) - poisoned)
        metrics.DEAD_LETTERED.inc(poisoned)
        for a in alerts:
            metrics.alert(a.camera_id, a.condition, a.severity)
        self.counters["alerts"] += len(alerts)
        self.counters["dead_lettered"] += poisoned

    def _status(self, state: Literal["running", "stopped", "failed"], reason: str = "") -> None:
        self._last_status = time.monotonic()
        disabled = "; ".join(f"{k}: {v}" for k, v in sorted(self.evaluator.disabled.items()))
        try:
            self.producer.send(
                self.topics.status,
                self.worker,
                StatusUpdate(
                    component="rules",
                    id=self.worker,
                    worker=self.worker,
                    state=state,
                    reason=(reason or (f"disabled rules: {disabled}" if disabled else ""))[:1000],
                    counters={k: float(v) for k, v in self.counters.items()},
                ),
            )
        except Exception:  # status is best effort
            log.warning("status not sent", exc_info=True)


def run(settings: Settings, stop: threading.Event) -> int:
    install_log_redaction()
    book = RuleBook.from_file(settings.rules.file) if settings.rules.file else RuleBook()
    return RulesWorker(settings, stop, book).run()
