"""The analyzer's work on one frame, free of Kafka: schedule engine calls, track, window, emit.

`FrameProcessor` is used by the Kafka worker (analyzer.service) and by in-process
replay alike, so both produce the same events for the same frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from analyzer import metrics
from analyzer import regions as rg
from analyzer.budget import NORMAL, Decision, Governor
from analyzer.describe import Describer
from analyzer.events import object_events
from analyzer.snapshots import SnapshotWriter
from analyzer.tracking import Detection, Tracker, TrackEvent
from analyzer.windows import OpenWindow, Windower
from bus.contracts import (
    FrameMeta,
    ObjectEvent,
    QuerySpec,
    Segment,
    Summary,
    stable_id,
    utcnow,
)
from bus.control import ControlState
from configs.settings import AnalyzerConfig, Regions
from glm45v_engine import Clip, EngineError, Frame, Grounding, UnsupportedQuery, VisionEngine, accounting

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (camera_id, query_id)
AheadKey = tuple[Key, str, int]  # (camera_id, query_id), source_session, frame_id
INTERVAL_FACTOR = 4.0  # budget level 1: the query's interval this many times longer…
MIN_DEGRADED_INTERVAL_S = 2.0  # …and at least this (an interval of 0 means every sampled frame)
MAX_LABEL = 200  # the store's label column; a model's (or a long query text's) longer label is cut


@dataclass
class Outputs:
    events: list[ObjectEvent] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)

    def extend(self, other: Outputs) -> None:
        self.events += other.events
        self.summaries += other.summaries


class EngineUnavailable(Exception):
    """The engine failed in a way worth retrying later: the frame must be processed again, not skipped.

    `partial` holds what the frame did produce (other queries that succeeded, tracks that expired):
    their state has moved on, so a retry will not produce them again and they must be kept."""

    def __init__(self, message: str, partial: Outputs | None = None) -> None:
        super().__init__(message)
        self.partial = partial or Outputs()


@dataclass
class Cursor:
    """The last frame a (camera, query) was answered for; frames at or before it are not asked again."""

    session: str = ""
    frame_id: int = -1

    def covers(self, meta: FrameMeta) -> bool:
        return self.session == meta.source_session and meta.frame_id <= self.frame_id


class FrameProcessor:
    def __init__(
        self,
        engine: VisionEngine,
        config: AnalyzerConfig,
        control: ControlState,
        *,
        snapshots: SnapshotWriter | None = None,
        skip_stale: bool = True,
    ) -> None:
        self.engine, self.config, self.control = engine, config, control
        self.snapshots, self.skip_stale = snapshots, skip_stale
        self.trackers: dict[Key, Tracker] = {}
        self.windowers: dict[Key, Windower] = {}
        self.unsummarized: dict[Key, list[OpenWindow]] = {}  # closed windows whose summary failed: retried
        self.last_call: dict[Key, tuple[str, float]] = {}
        self.cursors: dict[Key, Cursor] = {}
        self.counters: Counter[str] = Counter()
        self.refused: dict[str, str] = {}  # query_id -> why the engine refused it
        # Optional observer of every answered frame's boxes (replay scores raw boxes with it).
        self.on_boxes: Callable[[FrameMeta, QuerySpec, list[Detection]], None] | None = None
        self._sem = asyncio.Semaphore(config.max_concurrency)
        self._ahead: dict[AheadKey, asyncio.Future[Grounding]] = {}  # calls started by `prefetch`
        # The last call `prefetch` planned per (camera, query), so frames prefetched later (more
        # arrived while earlier ones are still being answered) continue the same schedule.
        self._planned: dict[Key, tuple[str, float]] = {}
        # Regions (analyzer.regions): the last whole frame sent per (camera, query), as `last_call`,
        # and the crops each prefetched call was planned with (None = the whole frame).
        self.last_full: dict[Key, tuple[str, float]] = {}
        self._planned_full: dict[Key, tuple[str, float]] = {}
        self._ahead_crops: dict[AheadKey, tuple[rg.Rect, ...] | None] = {}
        self.governor = Governor(config.budget)
        self.describer = Describer(engine, self._sem, self.counters)

    def tracker(self, key: Key) -> Tracker:
        if key not in self.trackers:
            self.trackers[key] = Tracker(key[0], key[1], self.config.tracking)
        return self.trackers[key]

    async def process(self, meta: FrameMeta, jpeg: bytes, offset: int = -1) -> Outputs:
        out = Outputs()
        self.counters["frames"] += 1
        metrics.frame(meta.camera_id)
        queries = self.control.queries_for(meta.camera_id)
        if not queries:
            self.counters["frames_without_query"] += 1
            metrics.skipped(meta.camera_id, "no_query")
            return out
        if self._stale(meta):
            self._skip("lag", meta.camera_id)
            for q in queries:  # time still passes for the tracks
                if q.kind == "grounding":
                    out.events += self._events(
                        q,
                        meta,
                        self.tracker((meta.camera_id, q.id)).expire(meta.pts_s, meta.frame_id, meta.wall_ts),
                    )
            return out
        frame: Frame | None = None
        tasks = []
        for q in queries:
            if q.kind == "summary":
                held = self.unsummarized.pop((meta.camera_id, q.id), [])
                for window in held + self._windower(q, meta).add(meta, jpeg, offset):
                    tasks.append(self._summarize(q, meta.camera_id, window))
            elif self.cursors.get((meta.camera_id, q.id), Cursor()).covers(meta):
                self._skip("already_processed", meta.camera_id)
            elif self._due(q, meta, self.last_call) and (plan := self._plan(q, meta, self.last_full)):
                crops, budget = plan
                self._drop_older_ahead((meta.camera_id, q.id), meta)
                ahead = ((meta.camera_id, q.id), meta.source_session, meta.frame_id)
                call = self._ahead.pop(ahead, None)
                if call is None:
                    frame = frame or _frame(meta, jpeg)
                    call = asyncio.ensure_future(self._call(q, frame, budget.image_factor, crops))
                else:  # what the prefetched call was sent with
                    crops = self._ahead_crops.pop(ahead, None)
                tasks.append(self._ground(q, meta, call, jpeg, crops))
            else:  # not due, or the budget allows no call (paused, or regions only and nothing moved)
                by_budget = self.governor.levels.get((meta.camera_id, q.id), NORMAL).regions_only
                self._skip(
                    "budget" if by_budget and self._due(q, meta, self.last_call) else "interval",
                    meta.camera_id,
                )
                tracker = self.tracker((meta.camera_id, q.id))
                out.events += self._events(q, meta, tracker.expire(meta.pts_s, meta.frame_id, meta.wall_ts))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:  # outputs of the queries that succeeded are kept even if another failed
            if isinstance(result, Outputs):
                out.extend(result)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if isinstance(failure, EngineUnavailable):
            raise EngineUnavailable(str(failure), out) from failure
        if failure is not None:
            raise failure
        return out

    def _skip(self, reason: str, camera_id: str) -> None:
        self.counters[f"skipped_{reason}"] += 1
        metrics.skipped(camera_id, reason)

    def _stale(self, meta: FrameMeta) -> bool:
        age = (utcnow() - meta.wall_ts).total_seconds()
        return self.skip_stale and meta.live and age > self.config.max_lag_s

    def _due(self, q: QuerySpec, meta: FrameMeta, last_call: dict[Key, tuple[str, float]]) -> bool:
        interval = q.interval_s if q.interval_s is not None else self.config.interval_s
        if self.governor.levels.get((meta.camera_id, q.id), NORMAL).interval_factor > 1:  # budget level 1+
            interval = max(interval * INTERVAL_FACTOR, MIN_DEGRADED_INTERVAL_S)
        last = last_call.get((meta.camera_id, q.id))
        return last is None or last[0] != meta.source_session or meta.pts_s - last[1] >= interval - 1e-6

    def prefetch(self, frames: Sequence[tuple[FrameMeta, bytes]]) -> None:
        """Start now the grounding calls `process` will make for these frames of one camera, in order.

        `process` handles a camera's frames one after another (tracking needs the order), so
        without this a camera with several frames in a poll batch waits for each answer before
        asking the next, and the concurrency budget sits idle behind the slowest camera. Which
        frames are due is decided as `process` will decide it, assuming the earlier calls succeed;
        a call that is not used (the batch failed, a frame went stale) is cancelled by `drop_ahead`.
        """
        last_call = {**self.last_call, **self._planned}
        last_full = {**self.last_full, **self._planned_full}
        for meta, jpeg in frames:
            if self._stale(meta):
                continue
            frame: Frame | None = None
            for q in self.control.queries_for(meta.camera_id):
                key = (meta.camera_id, q.id)
                ahead = (key, meta.source_session, meta.frame_id)
                if q.kind != "grounding" or ahead in self._ahead:
                    continue
                if self.cursors.get(key, Cursor()).covers(meta) or not self._due(q, meta, last_call):
                    continue
                plan = self._plan(q, meta, last_full)
                if plan is None:
                    continue
                crops, budget = plan
                last_call[key] = self._planned[key] = (meta.source_session, meta.pts_s)
                if crops is None and self._regions(q, meta.camera_id).enabled:
                    last_full[key] = self._planned_full[key] = (meta.source_session, meta.pts_s)
                frame = frame or _frame(meta, jpeg)
                self._ahead[ahead] = asyncio.ensure_future(self._call(q, frame, budget.image_factor, crops))
                self._ahead_crops[ahead] = crops

    def drop_ahead(self, camera_id: str | None = None) -> None:
        """Cancel the prefetched calls nobody took (a failed batch is redelivered and asks again),
        of one camera (its lane went idle or failed) or of all."""
        for ahead in [a for a in self._ahead if camera_id is None or a[0][0] == camera_id]:
            self._ahead.pop(ahead).cancel()
            self._ahead_crops.pop(ahead, None)
        for planned in (self._planned, self._planned_full):
            for key in [k for k in planned if camera_id is None or k[0] == camera_id]:
                del planned[key]

    def _drop_older_ahead(self, key: Key, meta: FrameMeta) -> None:
        """Calls prefetched for frames of this (camera, query) that `process` has passed will never
        be taken (an earlier answer changed the schedule): cancel them now, not when the lane idles."""
        for ahead in [
            a for a in self._ahead if a[0] == key and a[1] == meta.source_session and a[2] < meta.frame_id
        ]:
            self._ahead.pop(ahead).cancel()
            self._ahead_crops.pop(ahead, None)

    def _regions(self, q: QuerySpec, camera_id: str) -> Regions:
        """The query's own regions setting, else its camera's, else the analyzer's default."""
        camera = self.control.cameras.get(camera_id)
        return q.regions or (camera.regions if camera else None) or self.config.regions

    def _crops(
        self, q: QuerySpec, meta: FrameMeta, last_full: dict[Key, tuple[str, float]], *, only: bool = False
    ) -> tuple[rg.Rect, ...] | None:
        """The crops of the JPEG to send for this call (analyzer.regions), or None: the whole frame.
        `only` (budget level regions_only): crops of what moved whatever the settings say, never
        the whole frame for its schedule or its size; None then means there is nothing to crop."""
        cfg = self._regions(q, meta.camera_id)
        if only:
            cfg = cfg.model_copy(update={"full_frame_above": 1.0})
        elif not cfg.enabled or rg.whole_frame_due(
            last_full.get((meta.camera_id, q.id)), meta.source_session, meta.pts_s, cfg.full_frame_every_s
        ):
            return None
        return rg.plan_crops(meta.motion_regions, (meta.encoded_width, meta.encoded_height), cfg)

    def _plan(
        self, q: QuerySpec, meta: FrameMeta, last_full: dict[Key, tuple[str, float]]
    ) -> tuple[tuple[rg.Rect, ...] | None, Decision] | None:
        """The crops and the budget level of a due call about this frame, or None: no call (paused,
        or regions only and nothing moved)."""
        crops = self._crops(q, meta, last_full)
        budget = self._budget(q, meta, crops)
        if budget.regions_only:  # level 3 (or paused at the whole frame's price): crops, priced as such
            crops = self._crops(q, meta, last_full, only=True)
            if crops is None:
                return None
            budget = self._budget(q, meta, crops)
        return None if budget.paused else (crops, budget)

    def _budget(self, q: QuerySpec, meta: FrameMeta, crops: tuple[rg.Rect, ...] | None = None) -> Decision:
        """The budget level for a call about this frame (analyzer.budget), from its expected cost:
        the whole frame's, or its crops' (one image and one prompt each) when regions send crops."""
        camera = self.control.cameras.get(meta.camera_id)
        st = self.engine.stats  # answers as long as the engine's so far, at the price charged so far
        out = st.tokens_out // st.calls if st.calls else 0
        sizes = (
            [(r[2] - r[0], r[3] - r[1]) for r in crops]
            if crops
            else [(meta.encoded_width, meta.encoded_height)]
        )
        tokens = sum(accounting.prompt_tokens([size], [q.text]) + out for size in sizes)
        price = st.cost / (st.tokens_in + st.tokens_out) if st.tokens_in + st.tokens_out else 0.0
        peers = [p for p in self.control.queries_for(meta.camera_id) if p.kind == "grounding"]
        decision = self.governor.decide(
            meta.camera_id,
            q,
            camera_budget=camera.budget if camera else None,
            peers=peers,
            tokens=tokens,
            cost=tokens * price,
        )
        metrics.budget_level(meta.camera_id, q.id, decision.level)
        return decision

    async def _call(
        self, q: QuerySpec, frame: Frame, image_factor: float = 1.0, crops: tuple[rg.Rect, ...] | None = None
    ) -> Grounding:
        if crops:
            return await self._call_crops(q, frame, crops)
        cam = frame.camera_id or ""
        sent = _shrink(frame, image_factor)  # budget level 2: fewer visual tokens
        async with self._sem:
            started = time.perf_counter()
            try:
                [g] = await self.engine.ground([sent], q.text, thinking=q.thinking)
            except EngineError as exc:
                outcome = "refused" if isinstance(exc, UnsupportedQuery) else "error"
                metrics.call(cam, q.id, "ground", outcome, time.perf_counter() - started, None)
                raise
        metrics.call(cam, q.id, "ground", "ok", time.perf_counter() - started, g.usage)
        self.governor.record(cam, q.id, g.usage.tokens_in + g.usage.tokens_out, g.usage.cost)
        if sent is not frame:  # boxes back into the pixels of the frame as it travelled
            fx, fy = frame.size[0] / sent.size[0], frame.size[1] / sent.size[1]
            boxes = tuple(
                replace(b, bbox=(b.bbox[0] * fx, b.bbox[1] * fy, b.bbox[2] * fx, b.bbox[3] * fy))
                for b in g.boxes
            )
            g = replace(g, boxes=boxes, image_size=frame.size)
        return g

    async def _call_crops(self, q: QuerySpec, frame: Frame, crops: tuple[rg.Rect, ...]) -> Grounding:
        """One engine call per crop (already small: the budget's half size does not apply), boxes
        moved back into the frame's pixels."""
        cam = frame.camera_id or ""
        async with self._sem:
            started = time.perf_counter()
            try:
                answers = await self.engine.ground(
                    [rg.crop(frame, r) for r in crops], q.text, thinking=q.thinking
                )
            except EngineError as exc:
                outcome = "refused" if isinstance(exc, UnsupportedQuery) else "error"
                metrics.call(cam, q.id, "ground", outcome, time.perf_counter() - started, None)
                raise
        g = rg.join(answers, crops, frame.size)
        metrics.call(cam, q.id, "ground", "ok", time.perf_counter() - started, g.usage)
        self.governor.record(cam, q.id, g.usage.tokens_in + g.usage.tokens_out, g.usage.cost)
        self.counters["region_calls"] += 1
        return g

    async def _ground(
        self,
        q: QuerySpec,
        meta: FrameMeta,
        call: asyncio.Future[Grounding],
        jpeg: bytes,
        crops: tuple[rg.Rect, ...] | None = None,
    ) -> Outputs:
        key = (meta.camera_id, q.id)
        try:
            g = await call
        except UnsupportedQuery as exc:
            self.counters["engine_refused"] += 1
            if q.id not in self.refused:
                log.warning(
                    "engine refused query: %s", exc, extra={"query_id": q.id, "camera_id": meta.camera_id}
                )
            self.refused[q.id] = str(exc)
            return Outputs()
        except EngineError as exc:
            self.counters["engine_errors"] += 1
            log.warning("engine error: %s", exc, extra={"query_id": q.id, "camera_id": meta.camera_id})
            if exc.retryable:
                raise EngineUnavailable(str(exc)) from exc
            return Outputs()
        self.counters["engine_calls"] += 1
        self.last_call[key] = (meta.source_session, meta.pts_s)
        self.cursors[key] = Cursor(meta.source_session, meta.frame_id)
        if crops is None and self._regions(q, meta.camera_id).enabled:
            self.last_full[key] = (meta.source_session, meta.pts_s)
        if not g.boxes and g.unreadable:  # garbled, which is not "nothing there"
            self._skip("unreadable", meta.camera_id)  # asking again would give the same: skip, counted
            expired = self.tracker(key).expire(meta.pts_s, meta.frame_id, meta.wall_ts)
            return Outputs(events=self._events(q, meta, expired))
        sx, sy = meta.width / meta.encoded_width, meta.height / meta.encoded_height
        dets = [
            Detection(
                (b.label or q.text)[:MAX_LABEL],
                _clamp(
                    (b.bbox[0] * sx, b.bbox[1] * sy, b.bbox[2] * sx, b.bbox[3] * sy), meta.width, meta.height
                ),
                b.score,
            )
            for b in g.boxes
        ]
        dets = [d for d in dets if d.bbox[2] - d.bbox[0] >= 1 and d.bbox[3] - d.bbox[1] >= 1]
        if len(dets) > self.config.max_boxes_per_frame:  # an answer with thousands of boxes is not a scene
            self.counters["boxes_capped"] += len(dets) - self.config.max_boxes_per_frame
            dets = dets[: self.config.max_boxes_per_frame]
        self.counters["boxes"] += len(dets)
        if self.on_boxes:
            self.on_boxes(meta, q, dets)
        # Tracks outside the crops were not looked at: they are held, not counted missing.
        view = None if crops is None else [(r[0] * sx, r[1] * sy, r[2] * sx, r[3] * sy) for r in crops]
        steps = self.tracker(key).step(
            meta.pts_s,
            meta.frame_id,
            meta.wall_ts,
            dets,
            meta.source_session,
            (meta.width, meta.height),
            view,
        )
        snapshot = None
        if self.snapshots and any(e.phase == "start" for e in steps):
            boxes = [(d.bbox, d.label) for d in dets]
            rel = f"{meta.camera_id}/{q.id}/{meta.source_session[:8]}-{meta.frame_id}.jpg"
            snapshot = self.snapshots.write(rel, jpeg, boxes, (1 / sx, 1 / sy))
        events = self._events(q, meta, steps, latency_ms=g.latency_ms, snapshot=snapshot)
        if q.describe and steps:
            # A start is emitted at its confirming hit with the first hit's box: crop where each
            # track is in *this* frame, whose JPEG is the one at hand.
            now = {t.track_id: t.bbox for t in self.tracker(key).tracks if t.last_frame_id == meta.frame_id}
            events = await self.describer.annotate(
                q, meta.camera_id, jpeg, (meta.width, meta.height), steps, events, now
            )
        return Outputs(events=events)

    def _events(
        self,
        q: QuerySpec,
        meta: FrameMeta,
        steps: list[TrackEvent],
        *,
        latency_ms: float = 0.0,
        snapshot: str | None = None,
    ) -> list[ObjectEvent]:
        return object_events(
            self.engine,
            q,
            meta.camera_id,
            meta.source_session,
            (meta.width, meta.height),
            steps,
            latency_ms=latency_ms,
            snapshot=snapshot,
        )

    def _windower(self, q: QuerySpec, meta: FrameMeta) -> Windower:
        key = (meta.camera_id, q.id)
        if key not in self.windowers:
            self.windowers[key] = Windower(q.window_s, q.stride_s or q.window_s)
        return self.windowers[key]

    async def _summarize(self, q: QuerySpec, camera_id: str, window: OpenWindow) -> Outputs:
        frames = window.clip_frames()
        clip = Clip(
            tuple(
                Frame.from_jpeg(j, camera_id=camera_id, frame_id=m.frame_id, pts_s=m.pts_s, wall_ts=m.wall_ts)
                for m, j in frames
            ),
            camera_id=camera_id,
        )
        started = time.perf_counter()
        try:
            async with self._sem:
                started = time.perf_counter()  # the wait for a slot is not the engine's latency
                r = await self.engine.summarize(clip, q.text, thinking=q.thinking)
        except EngineError as exc:
            metrics.call(camera_id, q.id, "summarize", "error", time.perf_counter() - started, None)
            self.counters["engine_errors"] += 1
            log.warning("summary failed: %s", exc, extra={"query_id": q.id, "camera_id": camera_id})
            if exc.retryable:  # the window is closed: keep it to summarize when the frame is retried
                self.unsummarized.setdefault((camera_id, q.id), []).append(window)
                raise EngineUnavailable(str(exc)) from exc
            return Outputs()
        self.counters["summaries"] += 1
        metrics.call(camera_id, q.id, "summarize", "ok", time.perf_counter() - started, r.usage)
        ws, we = window.start_s, window.end_s
        segs = tuple(
            Segment(
                start_s=round(max(s.start_s, ws), 3),
                end_s=round(min(s.end_s, we), 3),
                description=s.description,
            )
            for s in r.segments
            if min(s.end_s, we) >= max(s.start_s, ws)
        )
        first, last = frames[0][0], frames[-1][0]
        return Outputs(
            summaries=[
                Summary(
                    summary_id=stable_id(camera_id, q.id, first.source_session, round(ws, 3)),
                    camera_id=camera_id,
                    query_id=q.id,
                    query_text=q.text,
                    window_start_s=round(ws, 3),
                    window_end_s=round(we, 3),
                    window_start_wall=first.wall_ts,
                    window_end_wall=last.wall_ts,
                    text=r.text,
                    segments=segs,
                    thinking=r.thinking,
                    frames=len(frames),
                    engine=self.engine.name,
                    model=self.engine.model,
                    tokens_in=r.usage.tokens_in,
                    tokens_out=r.usage.tokens_out,
                    latency_ms=round(r.latency_ms, 1),
                )
            ]
        )

    # ---- endings -------------------------------------------------------------------------------
    def close(
        self,
        *,
        camera_id: str | None = None,
        query_id: str | None = None,
        reason: str,
        wall: datetime | None = None,
    ) -> Outputs:
        """End the tracks of a stopped camera / removed query (or all): their `end` events."""
        out = Outputs()
        for (cam, qid), tracker in list(self.trackers.items()):
            if (camera_id and cam != camera_id) or (query_id and qid != query_id):
                continue
            q = self.control.queries.get(qid) or QuerySpec(id=qid, text=qid)
            steps = tracker.close_all(wall or utcnow(), reason)
            out.events += object_events(self.engine, q, cam, tracker.session, tracker.frame_size, steps)
            del self.trackers[(cam, qid)]
        return out

    async def finish(self, camera_id: str | None = None, wall: datetime | None = None) -> Outputs:
        """End of stream: summarize partial windows, then close tracks. If a summary fails retryably,
        the tracks stay open and the marker is retried (the failed windows are kept for it)."""
        out = Outputs()
        failure: EngineUnavailable | None = None
        for (cam, qid), windower in list(self.windowers.items()):
            q = self.control.queries.get(qid)
            if q is None or (camera_id and cam != camera_id):
                continue
            for window in self.unsummarized.pop((cam, qid), []) + windower.flush():
                try:
                    out.extend(await self._summarize(q, cam, window))
                except EngineUnavailable as exc:
                    failure = failure or exc
        if failure is not None:
            raise EngineUnavailable(str(failure), out) from failure
        out.extend(self.close(camera_id=camera_id, reason="end of stream", wall=wall))
        return out

    def oldest_open_offset(self, camera_id: str) -> int | None:
        """Offset of the oldest frame still held in an open summary window: commits must not pass it."""
        offsets = [
            o
            for (cam, _), w in self.windowers.items()
            if cam == camera_id and (o := w.oldest_offset()) is not None
        ]
        offsets += [
            o
            for (cam, _), ws in self.unsummarized.items()
            for w in ws
            if cam == camera_id and (o := w.first_offset) is not None and o >= 0
        ]
        return min(offsets) if offsets else None

    def forget_camera(self, camera_id: str) -> None:
        """Drop a camera's in-memory state (its partition moved to another worker)."""
        self.drop_ahead(camera_id)
        for table in (
            self.trackers,
            self.windowers,
            self.unsummarized,
            self.last_call,
            self.cursors,
            self.last_full,
        ):
            for key in [k for k in table if k[0] == camera_id]:
                del table[key]

    # ---- checkpoints ---------------------------------------------------------------------------
    def camera_state(self, camera_id: str) -> dict[str, Any]:
        return {
            "cursors": {
                qid: [c.session, c.frame_id] for (cam, qid), c in self.cursors.items() if cam == camera_id
            },
            "trackers": {qid: t.to_state() for (cam, qid), t in self.trackers.items() if cam == camera_id},
            "last_call": {qid: list(v) for (cam, qid), v in self.last_call.items() if cam == camera_id},
            "last_full": {qid: list(v) for (cam, qid), v in self.last_full.items() if cam == camera_id},
        }

    def load_camera_state(self, camera_id: str, state: dict[str, Any]) -> None:
        self.forget_camera(camera_id)
        for qid, (session, frame_id) in state.get("cursors", {}).items():
            self.cursors[(camera_id, qid)] = Cursor(session, int(frame_id))
        for qid, ts in state.get("trackers", {}).items():
            self.tracker((camera_id, qid)).load_state(ts)
        for qid, (sess, pts) in state.get("last_call", {}).items():
            self.last_call[(camera_id, qid)] = (sess, float(pts))
        for qid, (sess, pts) in state.get("last_full", {}).items():
            self.last_full[(camera_id, qid)] = (sess, float(pts))


def _shrink(frame: Frame, factor: float) -> Frame:
    if factor >= 1.0:
        return frame
    import cv2

    w, h = frame.size
    size = (max(28, round(w * factor)), max(28, round(h * factor)))  # never below one 28 px cell
    img = np.asarray(cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA), np.uint8)
    return replace(frame, image=img, jpeg=None)


def _frame(meta: FrameMeta, jpeg: bytes) -> Frame:
    return Frame.from_jpeg(
        jpeg, camera_id=meta.camera_id, frame_id=meta.frame_id, pts_s=meta.pts_s, wall_ts=meta.wall_ts
    )


def _clamp(b: tuple[float, float, float, float], w: int, h: int) -> tuple[float, float, float, float]:
    return (min(max(b[0], 0.0), w), min(max(b[1], 0.0), h), min(max(b[2], 0.0), w), min(max(b[3], 0.0), h))
