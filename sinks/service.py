"""`sightline sink`: topics → store (→ webhooks / MQTT), at-least-once, idempotent.

The loop: poll a batch, decode each record (poison → dead-letter topic), upsert the good
ones in one transaction, flush the dead letters, and only then commit the offsets. A store
outage stops progress (nothing is committed) but never loses or dead-letters a message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, cast

from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError

from bus.contracts import (
    Alert,
    ControlMessage,
    Envelope,
    ObjectEvent,
    RecordedSegment,
    StatusUpdate,
    Summary,
)
from bus.kafka import (
    PoisonMessage,
    Producer,
    commit,
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
from configs import Settings
from lifecycle.metrics import set_consumer_lag
from lifecycle.process import State, require_bootstrap, worker_id
from sinks import metrics
from sinks.store import Message, Store

log = logging.getLogger(__name__)
RETRY_MAX_S = 10.0
# Errors that say "the database is not reachable right now", not "this data is wrong".
TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, TimeoutError)


class SinkWorker:
    """One consumer's worth of work; `step()` is one poll → write → commit round."""

    def __init__(
        self,
        store: Store,
        consumer: Any,
        producer: Producer,
        topics: Topics,
        worker: str,
        on_stored: Callable[[Sequence[Message]], None] | None = None,
    ) -> None:
        self.store = store
        self.consumer = consumer
        self.producer = producer
        self.topics = topics
        self.worker = worker
        self.on_stored = on_stored
        self.counters: Counter[str] = Counter()
        self.state = State.STARTING
        self._models: dict[str, type[Envelope]] = {
            topics.detections: ObjectEvent,
            topics.summaries: Summary,
            topics.status: StatusUpdate,
            topics.control: ControlMessage,
            topics.alerts: Alert,
            topics.recordings: RecordedSegment,
        }

    def step(self, stop: threading.Event, timeout_ms: int = 500) -> int:
        polled = poll(self.consumer, timeout_ms, max_records=256)
        records: list[ConsumerRecord] = [r for batch in polled.values() for r in batch]
        if not records:
            return 0
        good: list[tuple[ConsumerRecord, Message]] = []
        poisoned = 0
        for rec in records:
            try:
                good.append((rec, self._decode(rec)))
            except PoisonMessage as exc:
                self._dead_letter(rec, str(exc))
                poisoned += 1
        fresh: list[Message] = []
        rejected = 0
        if good:
            written = self._write(good, stop)
            if written is None:
                return 0  # stopping with the batch unwritten: do not commit, it will be redelivered
            fresh, rejected = written
        if poisoned or rejected:
            self.producer.flush()  # dead letters must be durable before their offsets are committed
        commit(self.consumer, records)
        self.counters["stored"] += len(good) - rejected
        metrics.stored(fresh)
        if fresh and self.on_stored is not None:
            self.on_stored(fresh)
        return len(records)

    def _decode(self, rec: ConsumerRecord) -> Message:
        model = self._models.get(rec.topic)
        if model is None:
            raise PoisonMessage(f"sink does not handle topic {rec.topic}")
        if rec.value is None:
            raise PoisonMessage("empty message value")
        return cast(Message, decode(rec, model))

    def _dead_letter(self, rec: ConsumerRecord, reason: str) -> None:
        dead_letter(self.producer, self.topics.deadletter, rec, reason, self.worker)
        self.counters["dead_lettered"] += 1
        metrics.DEAD_LETTERED.inc()

    def _write(
        self, batch: list[tuple[ConsumerRecord, Message]], stop: threading.Event
    ) -> tuple[list[Message], int] | None:
        """(fresh messages, how many were dead-lettered); None if asked to stop before the store came back.

        A lost connection is retried with backoff (nothing is committed meanwhile). Any other
        database error is about the data: the batch is retried one message at a time and the
        message the database refuses goes to the dead-letter topic, so one bad value cannot
        stall a partition forever.
        """
        delay = 0.2
        while True:
            try:
                return self.store.write([m for _, m in batch]), 0
            except TRANSIENT as exc:
                self.counters["store_errors"] += 1
                metrics.STORE_ERRORS.labels("unavailable").inc()
                log.warning("store unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
            except SQLAlchemyError as exc:
                self.counters["store_rejects"] += 1
                metrics.STORE_ERRORS.labels("rejected").inc()
                log.warning("store refused a batch (%s); isolating the bad message", type(exc).__name__)
                return self._write_one_by_one(batch, stop)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, RETRY_MAX_S)

    def _write_one_by_one(
        self, batch: list[tuple[ConsumerRecord, Message]], stop: threading.Event
    ) -> tuple[list[Message], int] | None:
        fresh: list[Message] = []
        rejected = 0
        for rec, msg in batch:
            try:
                fresh += self.store.write([msg])
            except TRANSIENT:
                return None if stop.is_set() else self._write(batch, stop)  # the database went away
            except SQLAlchemyError as exc:
                reason = f"store refused it: {type(exc).__name__}: {str(getattr(exc, 'orig', exc))[:300]}"
                self._dead_letter(rec, reason)
                rejected += 1
        return fresh, rejected

    def status(self, state: str, reason: str = "", extra: dict[str, float] | None = None) -> StatusUpdate:
        return StatusUpdate(
            component="sink",
            id=self.worker,
            worker=self.worker,
            state=state,
            reason=reason,
            counters={**{k: float(v) for k, v in self.counters.items()}, **(extra or {})},
        )


def run(settings: Settings, stop: threading.Event) -> int:
    bootstrap = require_bootstrap(settings)
    install_log_redaction()
    wait_for_broker(bootstrap)
    topics = Topics.from_config(settings.bus)
    ensure_topics(bootstrap, topics.all(), settings.bus.partitions, settings.bus.replication)
    worker = worker_id("sink")
    store = Store(settings.store_url)
    from sinks.search import open_search

    store.search = open_search(store.engine, settings.search)
    if store.search is not None:  # a store from before search, or rows a crash left unindexed
        log.info("search index: %d rows backfilled", store.search.backfill())
        store.index_in_background()  # embedding and indexing overlap the next batch's writes
    producer = Producer(bootstrap, client_id=worker)
    consumer = make_consumer(
        bootstrap,
        [
            topics.detections,
            topics.summaries,
            topics.status,
            topics.control,
            topics.recordings,
            topics.alerts,
        ],
        settings.store.group_id,
        client_id=worker,
    )
    from sinks.outbound import Outbound
    from sinks.retention import RetentionJob

    outbound = Outbound.from_settings(settings)
    retention = RetentionJob(store, settings)
    ha = None
    if settings.homeassistant.enabled:
        from sinks.homeassistant import HomeAssistant

        ha = HomeAssistant(settings, store)

    def on_stored(fresh: Sequence[Message]) -> None:
        outbound.publish(fresh)
        if ha is not None:
            ha.stored(fresh)

    sink = SinkWorker(store, consumer, producer, topics, worker, on_stored=on_stored)
    log.info("sink started: store %s, group %s", _safe_url(store), settings.store.group_id)

    def _extra() -> dict[str, float]:
        indexer = (
            {f"search_{k}": float(v) for k, v in store.indexer.counters.items()} if store.indexer else {}
        )
        return {**outbound.counters(), **retention.counters(), **indexer}

    sink.state = State.RUNNING
    producer.send(topics.status, worker, sink.status("running"))
    next_heartbeat = time.monotonic() + settings.ingest.heartbeat_s
    try:
        while not stop.is_set():
            sink.step(stop)
            set_consumer_lag(settings.store.group_id, consumer_lag(consumer))
            retention.maybe_run()
            if ha is not None:
                ha.tick()
            if time.monotonic() >= next_heartbeat:
                producer.send(topics.status, worker, sink.status("running", extra=_extra()))
                next_heartbeat = time.monotonic() + settings.ingest.heartbeat_s
        sink.state = State.STOPPED
        producer.send(topics.status, worker, sink.status("stopped", "stop requested", _extra()))
        producer.flush(5.0)
    finally:
        consumer.close()
        producer.close()
        outbound.close()
        if ha is not None:
            ha.close()
        store.close()
    log.info("sink stopped: %s", dict(sink.counters))
    return 0


def _safe_url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=True)
