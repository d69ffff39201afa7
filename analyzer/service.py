"""`sightline analyze`: a worker in the analyzer consumer group on the frames topic.

Per poll batch: process each camera's frames in order (cameras concurrently),
produce events, summaries and tracker checkpoints, flush, and only then commit.
A crash anywhere before the commit replays the batch; ids are deterministic and
checkpoints let the next owner skip what was already answered, so the store ends
with the same events either way.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any, Literal

from kafka import ConsumerRebalanceListener
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata, TopicPartition

from analyzer import metrics
from analyzer.core import EngineUnavailable, FrameProcessor, Outputs
from analyzer.fence import OwnerFence
from analyzer.intake import check_frame
from analyzer.snapshots import SnapshotWriter
from bus import checkpoints
from bus.contracts import ControlMessage, FrameMeta, StatusUpdate
from bus.control import ControlFollower, ControlState
from bus.kafka import (
    PRODUCER_HEADER,
    GroupLease,
    PoisonMessage,
    Producer,
    commit_offsets,
    consumer_lag,
    dead_letter,
    decode_end_of_stream,
    decode_frame,
    ensure_topics,
    make_consumer,
    poll,
)
from bus.redact import install_log_redaction
from bus.topics import Topics
from configs.settings import Settings
from glm45v_engine import load_engine
from lifecycle.metrics import set_consumer_lag
from lifecycle.process import require_bootstrap, worker_id

log = logging.getLogger(__name__)
STATUS_EVERY_S = 5.0
MAX_BACKOFF_S = 30.0


class AnalyzerWorker(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings, self.stop = settings, stop
        self.bootstrap = require_bootstrap(settings)
        self.topics = Topics.from_config(settings.bus)
        self.worker = worker_id("analyzer", None)
        self.control = ControlState()
        self.control_inbox: queue.Queue[ControlMessage] = queue.Queue()
        self.engine = load_engine(settings.engine)
        metrics.ENGINE.engine = self.engine
        self.processor = FrameProcessor(
            self.engine, settings.analyzer, self.control, snapshots=SnapshotWriter(settings.data_dir)
        )
        self.producer = Producer(self.bootstrap, client_id=self.worker)
        self.camera_partition: dict[str, int] = {}
        self.fence = OwnerFence()  # frames of a stale ingest owner are dropped (ingest.ownership)
        self.backoff_s = 0.0
        self.loop = asyncio.new_event_loop()
        self._last_status = 0.0
        self.consumer: Any = None

    # ---- rebalance ---------------------------------------------------------------------------
    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self.topics.frames}
        for cam in [c for c, p in self.camera_partition.items() if p in gone]:
            self.processor.forget_camera(cam)
            del self.camera_partition[cam]

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.lease.renew()  # a join and sync just completed: we are a member as of now
        self._restore(assigned)

    def _restore(self, assigned: list[TopicPartition]) -> None:
        parts = [tp.partition for tp in assigned if tp.topic == self.topics.frames]
        states = checkpoints.restore(self.bootstrap, self.producer, self.topics.analyzer_state, parts)
        for cam, state in states.items():
            self.processor.load_camera_state(cam, state)
        log.info("assigned partitions %s; restored %d camera checkpoints", parts, len(states))

    # ---- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        ensure_topics(
            self.bootstrap, self.topics.all(), self.settings.bus.partitions, self.settings.bus.replication
        )
        follower = ControlFollower(self.bootstrap, self.topics.control, self.control_inbox.put).start()
        self.consumer = make_consumer(
            self.bootstrap, [], self.settings.analyzer.group_id, client_id=self.worker, max_poll_records=32
        )
        self.consumer.subscribe([self.topics.frames], listener=self)
        self.lease = GroupLease(self.consumer)
        self._status("running")
        try:
            while not self.stop.is_set():
                self._drain_control()
                batch = poll(self.consumer, 200)
                records = sorted(
                    (r for rs in batch.values() for r in rs), key=lambda r: (r.partition, r.offset)
                )
                if records:
                    self.loop.run_until_complete(self._handle(records))
                set_consumer_lag(self.settings.analyzer.group_id, consumer_lag(self.consumer))
                self._maybe_status()
            return 0
        except Exception as exc:
            log.exception("analyzer worker failed")
            self._status("failed", reason=f"{type(exc).__name__}: {exc}")
            return 1
        finally:
            follower.stop()
            self._status("stopped")
            self.consumer.close()
            self.loop.run_until_complete(self.engine.aclose())
            self.producer.flush()
            self.producer.close()
            self.loop.close()

    def _drain_control(self) -> None:
        out = Outputs()
        while True:
            try:
                msg = self.control_inbox.get_nowait()
            except queue.Empty:
                break
            before = self.control.queries.get(msg.id) if msg.kind == "query" else None
            self.control.apply(msg)
            if (
                msg.kind == "query"
                and before
                and not (msg.query and msg.query.enabled and msg.op == "upsert")
            ):
                out.extend(self.processor.close(query_id=msg.id, reason="query removed"))
            elif msg.kind == "camera" and (msg.op == "delete" or (msg.camera and not msg.camera.enabled)):
                out.extend(self.processor.close(camera_id=msg.id, reason="camera stopped"))
        self._produce(out, {})

    async def _handle(self, records: list[ConsumerRecord]) -> None:
        by_camera: dict[tuple[int, str], list[ConsumerRecord]] = defaultdict(list)
        for r in records:
            by_camera[(r.partition, (r.key or b"").decode("utf-8", "replace"))].append(r)
        out, failed = Outputs(), dict[int, int]()
        touched: dict[str, int] = {}

        async def one_camera(recs: list[ConsumerRecord]) -> None:
            recs = [r for r in recs if self._current_owner(r)]
            frames = {r.offset: f for r in recs if (f := _peek_frame(r, self.settings.bus.max_frame_bytes))}
            self.processor.prefetch(list(frames.values()))
            for r in recs:
                try:
                    result = await self._one(r, touched, frames.get(r.offset))
                except EngineUnavailable as exc:
                    out.extend(exc.partial)  # what did succeed has moved state on: a retry won't redo it
                    failed[r.partition] = min(failed.get(r.partition, r.offset), r.offset)
                    log.warning("engine unavailable, will retry from offset %d: %s", r.offset, exc)
                    return
                out.extend(result)

        try:
            await asyncio.gather(*(one_camera(recs) for recs in by_camera.values()))
        finally:
            self.processor.drop_ahead()
        if not self._still_owner(records, out):
            return
        self._produce(out, touched)
        self._commit(records, failed)
        if failed:
            self.backoff_s = min(MAX_BACKOFF_S, max(0.5, self.backoff_s * 2))
            self._status("running", reason=f"engine unavailable; retrying in {self.backoff_s:.1f}s")
            self.stop.wait(self.backoff_s)
        else:
            self.backoff_s = 0.0

    async def _one(
        self, r: ConsumerRecord, touched: dict[str, int], peeked: tuple[FrameMeta, bytes] | None = None
    ) -> Outputs:
        try:
            eos = None if peeked else decode_end_of_stream(r)
            if peeked:
                meta, jpeg = peeked
            elif eos is None:
                meta, jpeg = decode_frame(r)
                check_frame(meta, jpeg, self.settings.bus.max_frame_bytes)
        except PoisonMessage as exc:
            dead_letter(self.producer, self.topics.deadletter, r, str(exc), self.worker)
            self.processor.counters["dead_lettered"] += 1
            metrics.DEAD_LETTERED.inc()
            return Outputs()
        if eos is not None:
            touched[eos.camera_id] = r.partition
            return await self.processor.finish(eos.camera_id, wall=eos.ts)
        self.camera_partition[meta.camera_id] = r.partition
        touched[meta.camera_id] = r.partition
        return await self.processor.process(meta, jpeg, r.offset)

    def _still_owner(self, records: list[ConsumerRecord], out: Outputs) -> bool:
        """After the engine answered, before anything is produced: are these partitions still ours?

        A worker paused mid-batch (SIGSTOP, a frozen VM) wakes up with answers for partitions the
        group may have given to another worker meanwhile. Its lease (`bus.kafka.GroupLease`) says
        whether the coordinator can have expelled it; if so, the batch is dropped unproduced and
        uncommitted: the partitions' owner, now or after our rejoin, does it again.
        """
        if self.lease.held():
            return True
        self.processor.counters["batches_dropped_lease_lost"] += 1
        first: dict[int, int] = {}
        for r in records:
            first[r.partition] = min(first.get(r.partition, r.offset), r.offset)
        # Trackers and cursors moved on with the dropped answers: back to the last checkpoint, and
        # if the partitions stay ours the batch is read again (else the new owner restores them).
        tps = [TopicPartition(self.topics.frames, p) for p in first]
        self.on_partitions_revoked(tps)
        still = [tp for tp in tps if tp in set(self.consumer.assignment())]
        if still:
            self._restore(still)
            for tp in still:
                self.consumer.seek(tp, first[tp.partition])
        log.warning(
            "group lease lost while working (paused or cut off): dropped a batch of %d frames with "
            "%d events and %d summaries unproduced; the partitions' owner redoes it",
            len(records),
            len(out.events),
            len(out.summaries),
        )
        return False

    def _current_owner(self, r: ConsumerRecord) -> bool:
        """False for a frame or marker a stale ingest owner published (counted); poison passes on
        to `_one`, which dead-letters it."""
        try:
            eos = decode_end_of_stream(r)
            if eos is not None:
                return self.fence.admit(eos.camera_id, "", eos.owner_epoch)
            meta, _ = decode_frame(r)
        except PoisonMessage:
            return True
        if self.fence.admit(meta.camera_id, meta.owner, meta.owner_epoch):
            return True
        self.processor.counters["skipped_stale_owner"] += 1
        return False

    def _produce(self, out: Outputs, touched: dict[str, int]) -> None:
        who = [(PRODUCER_HEADER, self.worker.encode())]
        for e in out.events:
            self.producer.send(self.topics.detections, e.camera_id, e, headers=who)
            metrics.event(e.camera_id, e.query_id, e.phase)
        for s in out.summaries:
            self.producer.send(self.topics.summaries, s.camera_id, s, headers=who)
            metrics.summary(s.camera_id, s.query_id)
        for cam, partition in touched.items():
            checkpoints.write(
                self.producer, self.topics.analyzer_state, partition, cam, self.processor.camera_state(cam)
            )
        self.producer.flush()

    def _commit(self, records: list[ConsumerRecord], failed: dict[int, int]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            nxt = failed.get(r.partition, r.offset + 1)
            for cam, p in self.camera_partition.items():  # never commit past a frame an open window holds
                held = self.processor.oldest_open_offset(cam) if p == r.partition else None
                if held is not None:
                    nxt = min(nxt, held)
            offsets[tp] = OffsetAndMetadata(nxt, "", -1)
        commit_offsets(self.consumer, offsets)
        for p, offset in failed.items():
            self.consumer.seek(TopicPartition(self.topics.frames, p), offset)

    def _maybe_status(self) -> None:
        if time.monotonic() - self._last_status >= STATUS_EVERY_S:
            self._status("running")

    def _status(self, state: Literal["running", "stopped", "failed"], reason: str = "") -> None:
        self._last_status = time.monotonic()
        c, st = self.processor.counters, self.engine.stats
        counters = {
            **{k: float(v) for k, v in c.items()},
            "engine_tokens_in": float(st.tokens_in),
            "engine_tokens_out": float(st.tokens_out),
            "engine_cost": st.cost,
            "engine_latency_ms_total": st.latency_ms_total,
            "engine_calls_total": float(st.calls),
        }
        drops = {k.removeprefix("skipped_"): int(v) for k, v in c.items() if k.startswith("skipped_")}
        if self.processor.refused:
            reason = reason or "; ".join(sorted(set(self.processor.refused.values())))[:500]
        try:
            self.producer.send(
                self.topics.status,
                self.worker,
                StatusUpdate(
                    component="analyzer",
                    id=self.worker,
                    worker=self.worker,
                    state=state,
                    reason=reason,
                    drops=drops,
                    counters=counters,
                ),
            )
        except Exception:  # status is best effort; the work is what matters
            log.warning("status not sent", exc_info=True)


def _peek_frame(r: ConsumerRecord, max_bytes: int) -> tuple[FrameMeta, bytes] | None:
    """A record's frame if it is a good one; anything else is left to `_one`, which dead-letters it."""
    try:
        if decode_end_of_stream(r) is not None:
            return None
        meta, jpeg = decode_frame(r)
        check_frame(meta, jpeg, max_bytes)
    except PoisonMessage:
        return None
    return meta, jpeg


def run(settings: Settings, stop: threading.Event) -> int:
    install_log_redaction()
    return AnalyzerWorker(settings, stop).run()
