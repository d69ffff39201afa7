"""`sightline analyze`: a worker in the analyzer consumer group on the frames topic.

Each camera's records go to its lane (`analyzer.lanes`), worked in order while other cameras'
lanes run on — no poll batch waits for its slowest answer. A lane sends its events, then the
camera's tracker checkpoint; only records so settled are committed, after a flush. A crash
anywhere before the commit replays those records; ids are deterministic and checkpoints let the
next owner skip what was already answered, so the store ends with the same events either way.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Coroutine
from typing import Any, Literal

from kafka import ConsumerRebalanceListener
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata, TopicPartition

from analyzer import metrics
from analyzer.budget import budget_statuses
from analyzer.core import EngineUnavailable, FrameProcessor, Outputs
from analyzer.fence import OwnerFence
from analyzer.intake import check_frame
from analyzer.lanes import Item, Lane, Ledger, Peeked
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
POLL_MS = 1000  # returns as soon as records arrive; a short poll can make kafka-python re-join
MAX_QUEUED = 128  # records waiting in lanes before the worker stops polling
SETTLE_EVERY = 8  # a busy lane checkpoints at least every this many records
SETTLE_S = 0.05  # flush + commit at most this often
LOOP_S = 0.005  # the loop's nap while lanes work (engine answers arrive meanwhile)
STOP_GRACE_S = 10.0


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
        self.lanes: dict[str, Lane] = {}
        self.ledger = Ledger()
        self.rewind: dict[int, tuple[int, float]] = {}  # partition -> (offset, resume at, monotonic)
        self.to_pause: set[int] = set()
        self.backoff: dict[int, float] = {}
        self.fatal: BaseException | None = None
        self.lease_lost = False  # set by a lane that found the group lease gone before sending
        self.loop = asyncio.new_event_loop()
        self._last_status = 0.0
        self._last_settle = 0.0
        self._budgeted: set[str] = set()  # cameras last reported in the budget state
        self.consumer: Any = None

    # ---- rebalance ---------------------------------------------------------------------------
    # kafka-python calls these on its network thread while `poll` runs in an executor thread; the
    # camera state belongs to the event loop's thread, so the work is handed to the loop and the
    # callback waits for it (the lanes keep running meanwhile; records come only after poll returns).
    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self.topics.frames}
        self._on_loop(self._revoke(gone))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.lease.renew()  # a join and sync just completed: we are a member as of now
        self._restore(assigned)

    def _restore(self, assigned: list[TopicPartition]) -> None:
        parts = [tp.partition for tp in assigned if tp.topic == self.topics.frames]
        states = checkpoints.restore(self.bootstrap, self.producer, self.topics.analyzer_state, parts)

        async def load() -> None:
            for cam, state in states.items():
                self.processor.load_camera_state(cam, state)

        self._on_loop(load())
        log.info("assigned partitions %s; restored %d camera checkpoints", parts, len(states))

    def _on_loop(self, coro: Coroutine[Any, Any, None]) -> None:
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=STOP_GRACE_S * 3)
        else:  # consumer.close() after the loop ended: no lane is working
            self.loop.run_until_complete(coro)

    async def _revoke(self, gone: set[int]) -> None:
        """Lanes of revoked partitions stop where they are: mid-frame state is forgotten with the
        camera and was never checkpointed; what they settled is in the last commit or checkpoint."""
        lanes = [lane for lane in self.lanes.values() if lane.partition in gone]
        for lane in lanes:
            del self.lanes[lane.camera_id]
            lane.queue.clear()
            if lane.task is not None:
                lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in lanes if lane.task is not None), return_exceptions=True)
        for cam in [c for c, p in self.camera_partition.items() if p in gone]:
            self.processor.forget_camera(cam)
            del self.camera_partition[cam]
        for p in gone:
            self.ledger.forget(p)
            self.rewind.pop(p, None)
            self.to_pause.discard(p)

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
            self.loop.run_until_complete(self._main())
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

    async def _main(self) -> None:
        """Poll, hand records to their cameras' lanes, settle; never wait for a whole batch.

        Poll runs in an executor thread so the lanes (engine answers) go on meanwhile; the consumer
        is touched by one thread at a time (commit, seek, pause between polls). Past `MAX_QUEUED`
        waiting records it stops polling until the lanes catch up (the broker keeps the rest)."""
        try:
            while not self.stop.is_set():
                if self.fatal is not None:
                    raise self.fatal
                self._drain_control()
                if self.lease_lost:
                    await self._lease_lost()
                if sum(len(lane.queue) for lane in self.lanes.values()) < MAX_QUEUED:
                    batch = await self.loop.run_in_executor(None, poll, self.consumer, POLL_MS)
                    records = sorted(
                        (r for rs in batch.values() for r in rs), key=lambda r: (r.partition, r.offset)
                    )
                    self._dispatch(records)
                    set_consumer_lag(self.settings.analyzer.group_id, consumer_lag(self.consumer))
                else:
                    await asyncio.sleep(LOOP_S)
                await self._settle()
                self._maybe_status()
        finally:
            await self._wind_down()

    def _dispatch(self, records: list[ConsumerRecord]) -> None:
        new: dict[str, list[tuple[FrameMeta, bytes]]] = defaultdict(list)
        for r in records:
            if r.partition in self.rewind:
                continue  # fetched before the pause; delivered again after the seek
            if not self._current_owner(r):
                self.ledger.dispatched(r.partition, r.offset)
                self.ledger.settled(r.partition, r.offset)  # nothing to do for it: done
                continue
            cam = (r.key or b"").decode("utf-8", "replace")
            lane = self.lanes.get(cam) or self.lanes.setdefault(cam, Lane(cam))
            lane.partition = r.partition
            self.ledger.dispatched(r.partition, r.offset)
            peeked = _peek_frame(r, self.settings.bus.max_frame_bytes)
            lane.queue.append(Peeked(r, peeked))
            if peeked:
                new[cam].append(peeked)
        for frames in new.values():
            self.processor.prefetch(frames)  # ask now what the lane will need, in its order
        for lane in self.lanes.values():
            if lane.queue and (lane.task is None or lane.task.done()):
                lane.task = self.loop.create_task(self._work(lane))

    async def _work(self, lane: Lane) -> None:
        """A camera's items, one at a time and in order; settles (events + checkpoint) at a frame
        boundary: when the lane runs dry or every `SETTLE_EVERY` records."""
        try:
            while lane.queue:
                item = lane.queue.popleft()
                lane.busy = True
                try:
                    if isinstance(item, Peeked):
                        out = await self._one(item.record, item.frame)
                        lane.unsettled.append((item.record.partition, item.record.offset))
                    else:
                        out = item()
                except EngineUnavailable as exc:
                    if not isinstance(item, Peeked):
                        raise
                    lane.busy = False
                    if not await self._lease_settled():
                        self.lease_lost = True  # nothing is sent: see _lease_lost
                        return
                    self._send(exc.partial)  # what did succeed has moved state on: a retry won't redo it
                    lane.dirty = True
                    self._checkpoint(lane)
                    self._failed(lane, item.record, exc)
                    return
                finally:
                    lane.busy = False
                if not await self._lease_settled():
                    self.lease_lost = True  # nothing is sent: see _lease_lost
                    return
                self._send(out)
                lane.dirty = True
                if not lane.queue or len(lane.unsettled) >= SETTLE_EVERY:
                    self._checkpoint(lane)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not an outage: the worker fails as it always has
            self.fatal = self.fatal or exc
        finally:
            if not lane.queue:
                self.processor.drop_ahead(lane.camera_id)

    async def _lease_settled(self) -> bool:
        """Whether sending is safe. A lapsed lease is waited out while the group decides: a broker
        outage ends with the lease answered again (send, nothing redone), an expulsion ends with
        the partitions revoked or lost, which cancels this lane before it sends anything. Only a
        stop gives up waiting (then `_lease_lost` drops the unsent work)."""
        if self.lease.held():
            return True
        log.warning(
            "group lease lapsed while working (paused or cut off): waiting for the group before sending"
        )
        while not self.lease.held():
            if self.stop.is_set():
                return False
            await asyncio.sleep(0.05)
        return True

    def _checkpoint(self, lane: Lane) -> None:
        if lane.dirty and lane.partition >= 0:
            checkpoints.write(
                self.producer,
                self.topics.analyzer_state,
                lane.partition,
                lane.camera_id,
                self.processor.camera_state(lane.camera_id),
            )
        lane.dirty = False
        for partition, offset in lane.unsettled:
            self.ledger.settled(partition, offset)
            self.backoff.pop(partition, None)
        lane.unsettled.clear()

    def _failed(self, lane: Lane, r: ConsumerRecord, exc: EngineUnavailable) -> None:
        """A retryable engine failure: the partition goes back to this record after a backoff.
        Records of that partition not yet started (in any lane) are dropped: they come again."""
        log.warning("engine unavailable, will retry from offset %d: %s", r.offset, exc)
        p = r.partition
        self.ledger.dropped(p, r.offset)
        for other in self.lanes.values():
            keep: deque[Item] = deque()
            for item in other.queue:
                if isinstance(item, Peeked) and item.record.partition == p:
                    self.ledger.dropped(p, item.record.offset)
                else:
                    keep.append(item)
            other.queue = keep
        delay = self.backoff[p] = min(MAX_BACKOFF_S, max(0.5, self.backoff.get(p, 0.0) * 2))
        # Back to the first record not done: the failed one, or an earlier one just dropped from
        # another camera's lane on this partition (its camera had not reached it yet).
        offset = self.ledger.floor.get(p, r.offset)
        self.rewind[p] = (offset, time.monotonic() + delay)
        self.to_pause.add(p)  # by the main loop, between polls
        self._status("running", reason=f"engine unavailable; retrying in {delay:.1f}s")

    async def _settle(self) -> None:
        """Flush what the lanes sent, commit what is settled, and rewind failed partitions whose
        lanes are done with them and whose backoff is over."""
        for p in self.to_pause:
            self.consumer.pause(TopicPartition(self.topics.frames, p))
        self.to_pause.clear()
        now = time.monotonic()
        due = [p for p, (_, at) in self.rewind.items() if at <= now and not self.ledger.in_flight(p)]
        if not due and now - self._last_settle < SETTLE_S:
            return
        self._last_settle = now
        await self._commit_async()
        for p in due:
            offset, _ = self.rewind.pop(p)
            tp = TopicPartition(self.topics.frames, p)
            self.consumer.seek(tp, offset)
            self.ledger.rewound(p, offset)
            self.consumer.resume(tp)

    async def _commit_async(self) -> None:
        """Flush what the lanes sent, then commit what was settled before the flush began."""
        targets = self.ledger.targets()  # no lane runs between this line and the flush's start
        await self.loop.run_in_executor(None, self.producer.flush)
        offsets = {}
        for p, offset in targets.items():
            for cam, cp in self.camera_partition.items():  # never past a frame an open window holds
                held = self.processor.oldest_open_offset(cam) if cp == p else None
                if held is not None:
                    offset = min(offset, held)
            if self.ledger.committed.get(p) != offset:
                offsets[p] = offset
        tps = {
            TopicPartition(self.topics.frames, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()
        }
        if tps and commit_offsets(self.consumer, tps):
            self.ledger.committed.update(offsets)

    async def _wind_down(self) -> None:
        """Stop: records not started are dropped (delivered again), frames in flight get a grace
        period to finish, then whatever is settled is flushed and committed."""
        for lane in self.lanes.values():
            for item in lane.queue:
                if isinstance(item, Peeked):
                    self.ledger.dropped(item.record.partition, item.record.offset)
            lane.queue.clear()
        tasks = [lane.task for lane in self.lanes.values() if lane.task is not None and not lane.task.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._commit_async()

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
                for cam in {c for c, q in self.processor.trackers if q == msg.id}:
                    out.extend(self._close(cam, msg.id, "query removed"))
            elif msg.kind == "camera" and (msg.op == "delete" or (msg.camera and not msg.camera.enabled)):
                out.extend(self._close(msg.id, None, "camera stopped"))
        self._send(out)

    def _close(self, camera_id: str, query_id: str | None, reason: str) -> Outputs:
        """End tracks in order with the camera's frames: through its lane if it is working."""

        def action() -> Outputs:
            return self.processor.close(camera_id=camera_id, query_id=query_id, reason=reason)

        lane = self.lanes.get(camera_id)
        if lane is None or not lane.active:
            return action()
        lane.queue.append(action)
        return Outputs()

    async def _one(self, r: ConsumerRecord, peeked: tuple[FrameMeta, bytes] | None = None) -> Outputs:
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
            return await self.processor.finish(eos.camera_id, wall=eos.ts)
        self.camera_partition[meta.camera_id] = r.partition
        return await self.processor.process(meta, jpeg, r.offset)

    async def _lease_lost(self) -> None:
        """A lane found the group lease gone before sending (paused, or cut off): nothing unsent is
        sent. A worker paused mid-frame (SIGSTOP, a frozen VM) wakes up with answers for partitions
        the group may have given to another worker meanwhile; its lease (`bus.kafka.GroupLease`)
        says whether the coordinator can have expelled it. The lanes stop, the cameras' state goes
        back to their last checkpoint, and partitions still ours are read again from the first
        record not settled (the new owner, if any, restores them itself)."""
        self.lease_lost = False
        self.processor.counters["batches_dropped_lease_lost"] += 1
        parts = {lane.partition for lane in self.lanes.values() if lane.partition >= 0}
        parts |= {p for p in self.ledger.pending if self.ledger.pending[p]}
        first = {p: o for p in parts if (o := self.ledger.commit_offset(p)) is not None}
        await self._revoke(parts)
        mine = {tp.partition for tp in self.consumer.assignment() if tp.topic == self.topics.frames}
        still = sorted(parts & mine)
        if still:
            states = await self.loop.run_in_executor(
                None, checkpoints.restore, self.bootstrap, self.producer, self.topics.analyzer_state, still
            )
            for cam, state in states.items():
                self.processor.load_camera_state(cam, state)
            for p in still:
                if p in first:
                    self.consumer.seek(TopicPartition(self.topics.frames, p), first[p])
        log.warning(
            "group lease lost while working (paused or cut off): dropped the unsent work of "
            "partitions %s; the partitions' owner redoes it",
            sorted(parts),
        )

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

    def _send(self, out: Outputs) -> None:
        who = [(PRODUCER_HEADER, self.worker.encode())]
        for e in out.events:
            self.producer.send(self.topics.detections, e.camera_id, e, headers=who)
            metrics.event(e.camera_id, e.query_id, e.phase)
        for s in out.summaries:
            self.producer.send(self.topics.summaries, s.camera_id, s, headers=who)
            metrics.summary(s.camera_id, s.query_id)

    def _maybe_status(self) -> None:
        if time.monotonic() - self._last_status >= STATUS_EVERY_S:
            self._status("running")
            self._budget_status()

    def _budget_status(self) -> None:
        for update in budget_statuses(self.processor.governor, self._budgeted, self.worker):
            try:
                self.producer.send(self.topics.status, update.id, update)
            except Exception:  # status is best effort
                log.warning("budget status not sent", exc_info=True)

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
