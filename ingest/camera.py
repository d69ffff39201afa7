"""One camera: a supervisor thread (open, decode, sample, gate, reconnect) and a publisher thread.

States: starting → streaming → (reconnecting → streaming)* → stopped | failed. Every
transition is reported through the publisher. Nothing raised by a source leaves this module:
bad input ends as a `failed` state with its reason, never as a crash of the process.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import av

from bus.camera_urls import ResolvedSource, SourceRefused, resolve
from bus.contracts import EndOfStream, FrameMeta, StatusUpdate, stable_id
from configs.settings import IngestConfig
from ingest import metrics
from ingest.encode import FrameTooLarge, encode_jpeg
from ingest.framequeue import FrameQueue
from ingest.gating import Reason, make_gate
from ingest.plan import CameraPlan
from ingest.recorder import SegmentRecorder
from ingest.sampling import Pacer, Sampler
from ingest.sources import Source, SourceError, VideoSource, open_source
from lifecycle import pause

log = logging.getLogger(__name__)
CameraState = Literal["starting", "streaming", "reconnecting", "stopped", "failed"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HEADER_ROOM = 4096  # bytes kept free in a frame message for the key and the FrameMeta header


class FramePublisher(Protocol):
    def frame(self, meta: FrameMeta, jpeg: bytes) -> None: ...
    def status(self, update: StatusUpdate) -> None: ...
    def end_of_stream(self, eos: EndOfStream) -> None: ...


@dataclass
class _Item:
    frame: av.VideoFrame
    index: int
    session: str
    pts_s: float
    wall_ts: datetime
    live: bool
    keyframe: bool
    reason: Reason
    score: float | None
    queued_at: float
    regions: tuple[tuple[float, float, float, float], ...] | None = None


@dataclass(frozen=True)
class _End:
    """The last item of the frame queue: end-of-stream, published only after every frame before it."""

    reason: str


class Backoff:
    """Capped exponential backoff with jitter (half to full delay), reset after a good session."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        cap = min(self.max_s, self.initial_s * (2**self.attempt))
        self.attempt += 1
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0


class CameraWorker:
    def __init__(
        self,
        plan: CameraPlan,
        cfg: IngestConfig,
        publisher: FramePublisher,
        *,
        worker: str = "",
        max_frame_bytes: int = 900_000,
        on_exit: Callable[[CameraWorker], None] | None = None,
        recorder: SegmentRecorder | None = None,
    ) -> None:
        self.plan = plan
        self.recorder = recorder
        self.cfg = cfg
        self.publisher = publisher
        self.worker = worker
        self.max_jpeg_bytes = max(4096, max_frame_bytes - HEADER_ROOM)
        self.state: CameraState = "starting"
        self.reason = ""
        self.session = ""
        self.last_frame_id = -1
        self._file_runs = 0
        self._src: ResolvedSource | None = None
        self.decoded = 0
        self.published = 0
        self.sampled = 0  # kept by the sampler: each is gated, published or counted in `drops`
        self.gated = 0
        self.reconnects = 0
        self.lag_s = 0.0
        self.drops: dict[str, int] = {}
        self.gone_s = 0.0  # how long live sources were gone: last frame before a disconnect to first after
        self._gone_since: float | None = None
        self._stop = threading.Event()
        self._stop_reason = "stopped"
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._last_snap = (time.monotonic(), 0, 0)
        self._queue: FrameQueue[_Item | _End] = FrameQueue(cfg.queue_size, "drop_oldest")
        self._eos_sent = False
        self._thread = threading.Thread(target=self._run, name=f"cam-{plan.camera_id}", daemon=True)
        self._publisher = threading.Thread(
            target=self._publish_loop, name=f"pub-{plan.camera_id}", daemon=True
        )
        self._extra = {"camera_id": plan.camera_id}

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        metrics.set_state(self.plan.camera_id, "starting")
        self._publisher.start()
        self._thread.start()

    def stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason
        self._stop.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- status -------------------------------------------------------------------------
    def snapshot(self) -> StatusUpdate:
        """Current state with rates since the previous snapshot."""
        with self._lock:
            now = time.monotonic()
            t0, dec0, pub0 = self._last_snap
            dt = max(now - t0, 1e-6)
            fps_in, fps_out = (self.decoded - dec0) / dt, (self.published - pub0) / dt
            self._last_snap = (now, self.decoded, self.published)
        cid = self.plan.camera_id
        metrics.FPS_IN.labels(metrics.cam(cid)).set(fps_in)
        metrics.FPS_OUT.labels(metrics.cam(cid)).set(fps_out)
        return self._update(fps_in=round(fps_in, 3), fps_out=round(fps_out, 3))

    def _update(self, fps_in: float = 0.0, fps_out: float = 0.0) -> StatusUpdate:
        drops = dict(self.drops)
        if self._queue.dropped:
            drops["queue_full"] = self._queue.dropped
        reason, rec = self.reason, self.recorder
        extra: dict[str, float] = {}
        if rec is not None:
            extra = {"recording": 0.0 if rec.problem else 1.0, "segments": rec.segments}
            if rec.problem:
                reason = f"{reason}; recording stopped: {rec.problem}".lstrip("; ")
        return StatusUpdate(
            component="camera",
            id=self.plan.camera_id,
            worker=self.worker,
            state=self.state,
            reason=reason,
            source_session=self.session,
            fps_in=fps_in,
            fps_out=fps_out,
            lag_s=round(self.lag_s, 4),
            drops=drops,
            counters={
                "decoded": self.decoded,
                "published": self.published,
                "sampled": self.sampled,
                "gated": self.gated,
                "reconnects": self.reconnects,
                "queued": len(self._queue),
                "gone_s": round(self.gone_s, 3),
                **extra,
            },
        )

    def _set_state(self, state: CameraState, reason: str = "") -> None:
        self.state, self.reason = state, reason
        metrics.set_state(self.plan.camera_id, state)
        level = logging.WARNING if state in ("reconnecting", "failed") else logging.INFO
        log.log(level, "camera %s: %s %s", self.plan.camera_id, state, reason, extra=self._extra)
        self._safe_status(self._update())

    def _safe_status(self, update: StatusUpdate) -> None:
        try:
            self.publisher.status(update)
        except Exception:  # a broker hiccup must not kill the camera
            log.warning("status publish failed", exc_info=True, extra=self._extra)

    def _drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n
        metrics.DROPS.labels(metrics.cam(self.plan.camera_id), reason).inc(n)

    def _count_gap(self, source: Source) -> None:
        """A live source is back: count the sampled frames it would have given while it was gone."""
        if self._gone_since is None:
            return
        gap = time.monotonic() - self._gone_since
        # Time this process itself was not running (SIGSTOP, a frozen VM) is not the source's doing:
        # what it cost is counted apart, so `source_gone` keeps meaning what the camera did.
        paused = min(gap, pause.clock().paused_since(self._gone_since))
        self._gone_since = None
        fps = getattr(source, "nominal_fps", None)
        rate = min(self.plan.sample_fps, fps) if fps else self.plan.sample_fps
        missed = max(0, round(gap * rate) - 1)  # one frame interval is no gap
        ours = min(missed, round(paused * rate))
        self.gone_s += gap - paused
        if missed - ours:
            self._drop("source_gone", missed - ours)
        if ours:
            self._drop("process_paused", ours)
        log.warning(
            "camera %s: source back after %.1f s (%.1f s of it this process was paused); "
            "%d sampled frames missed",
            self.plan.camera_id,
            gap,
            paused,
            missed,
            extra=self._extra,
        )

    # -- supervisor ---------------------------------------------------------------------
    def _run(self) -> None:
        final: tuple[CameraState, str] = ("stopped", "stopped")
        try:
            self._set_state("starting")
            final = self._supervise()
        except Exception as exc:  # last line of defence: report, never take the process down
            log.exception("camera crashed", extra=self._extra)
            final = ("failed", f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if self._stop.is_set() and final[0] != "failed":
                final = ("stopped", self._stop_reason)
            self._drain(final[1])
            self._set_state(*final)
            if self._on_exit:
                self._on_exit(self)

    def _drain(self, reason: str) -> None:
        """Publish what is queued, then end-of-stream, before the final state is reported.

        End-of-stream travels as the last item of the frame queue, so it is only sent after every
        frame before it. A file played to its end is lossless: the decoder waits for the analyzer
        however slow it or the machine is, so this waits for the publisher without a bound. Live
        cameras, and any camera asked to stop, give it `drain_timeout_s`; after that the marker is
        sent from here, and frames still queued may follow it (they are late either way).
        """
        self._queue.close(final=_End(reason))
        lossless = self._queue.policy == "block" and not self._stop.is_set()
        deadline = None if lossless else time.monotonic() + self.cfg.drain_timeout_s
        while self._publisher.is_alive():
            self._publisher.join(0.2)
            now = time.monotonic()
            if deadline is None and self._stop.is_set():  # asked to stop while draining a file
                deadline = now + self.cfg.drain_timeout_s
            if deadline is not None and now >= deadline and self._publisher.is_alive():
                log.warning(
                    "camera %s: %d frames not published within %.1f s; sending end-of-stream",
                    self.plan.camera_id,
                    len(self._queue),
                    self.cfg.drain_timeout_s,
                    extra=self._extra,
                )
                break
        self._end_of_stream(reason)  # nothing to do when the publisher already sent it

    def _end_of_stream(self, reason: str) -> None:
        """Tell the analyzer, in order with the frames, that this source ended: tracks end, windows flush."""
        with self._lock:  # sent once: by the publisher after the last frame, or by `_drain` on timeout
            if self.last_frame_id < 0 or self._eos_sent:
                return
            self._eos_sent = True
        eos = EndOfStream(
            camera_id=self.plan.camera_id,
            source_session=self.session,
            last_frame_id=self.last_frame_id,
            reason=reason or "stopped",
        )
        try:
            self.publisher.end_of_stream(eos)
        except Exception:
            log.warning("end-of-stream marker not sent", exc_info=True, extra=self._extra)

    def _recorded_at(self) -> datetime:
        try:
            return datetime.fromtimestamp(os.stat(self._src.target).st_mtime, UTC) if self._src else _EPOCH
        except OSError:
            return _EPOCH

    def _new_session(self, live: bool) -> str:
        """A live connection gets a fresh id. A file's id follows from the file itself (and the loop
        count), so replaying it — or restarting ingest — yields the same frames and downstream ids."""
        if live or self._src is None or self._src.kind != "file":
            return uuid.uuid4().hex[:16]
        self._file_runs += 1
        try:
            st = os.stat(self._src.target)
            ident: tuple[object, ...] = (st.st_size, st.st_mtime_ns)
        except OSError:
            ident = ()
        return stable_id(self.plan.camera_id, self._src.target, *ident, self._file_runs)[:16].replace("-", "")

    def _supervise(self) -> tuple[CameraState, str]:
        try:
            src = resolve(self.plan.url, self.cfg)
        except SourceRefused as exc:
            return "failed", f"refused: {exc}"
        self._src = src
        live_kind = src.kind != "file"
        self._queue.policy = "drop_oldest" if (live_kind or self.plan.realtime) else "block"
        backoff = Backoff(self.cfg.reconnect_initial_s, self.cfg.reconnect_max_s)
        while not self._stop.is_set():
            try:
                source = open_source(
                    src, self.cfg, sample_fps=self.plan.sample_fps, keyframes_only=self.plan.keyframes_only
                )
            except SourceError as exc:
                if exc.permanent or not live_kind:
                    return "failed", exc.reason
                self._reconnect_wait(exc.reason, backoff)
                continue
            frames, error = self._stream(source)
            if self._stop.is_set():
                break
            if frames:
                backoff.reset()
            if source.live:
                self._reconnect_wait(error.reason if error else "end of stream (disconnected)", backoff)
                continue
            if error:
                return "failed", f"{error.reason} after {frames} frames (truncated or corrupt file?)"
            if frames == 0:
                return "failed", "no decodable video frames in the file"
            if not self.plan.loop:
                return "stopped", "end of file"
            log.info("end of file: looping", extra=self._extra)  # a new session per loop
        return "stopped", self._stop_reason

    def _reconnect_wait(self, reason: str, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        self.reconnects += 1
        metrics.RECONNECTS.labels(metrics.cam(self.plan.camera_id)).inc()
        self._set_state("reconnecting", f"{reason}; retry in {delay:.1f}s")
        self._stop.wait(delay)

    def _stream(self, source: Source) -> tuple[int, SourceError | None]:
        """Decode one session; returns (frames decoded, error or None at end of stream)."""
        plan = self.plan
        self.session = self._new_session(source.live)
        sampler = Sampler(plan.sample_fps)
        gate = make_gate(
            plan.gate,
            heartbeat_s=self.cfg.heartbeat_s,
            motion_threshold=self.cfg.motion_threshold,
            scene_threshold=self.cfg.scene_threshold,
        )
        pacer = Pacer(self._stop) if plan.realtime and not source.live else None
        # Paced sources are stamped with the clock; a file played as fast as possible is stamped with
        # when it was recorded (its mtime) plus media time, so a replay is the same every time.
        live = source.live or plan.realtime
        started = datetime.now(UTC) if live else self._recorded_at()
        pts0: float | None = None
        frames = 0
        last_at: float | None = None  # when the last frame was decoded
        counter = metrics.FRAMES_DECODED.labels(metrics.cam(plan.camera_id))
        # Which cameras record is the manager's decision (a file camera is its own recording).
        recorder = self.recorder if isinstance(source, VideoSource) else None
        if recorder is not None and isinstance(source, VideoSource):
            recorder.begin(source.stream, self.session)
            source.on_packet = recorder.packet
        try:
            for d in source.frames():
                if self._stop.is_set():
                    break
                with self._lock:
                    self.decoded += 1
                counter.inc()
                last_at = time.monotonic()
                if frames == 0:
                    if source.live:
                        self._count_gap(source)
                    self._set_state("streaming", "")
                frames += 1
                if not sampler.keep(d.pts_s):
                    continue
                self.sampled += 1
                decision = gate.decide(d.frame, d.pts_s, keyframe_reason=plan.keyframes_only)
                if not decision.publish:
                    self.gated += 1
                    metrics.FRAMES_GATED.labels(metrics.cam(plan.camera_id)).inc()
                    continue
                if pacer:
                    pacer.wait(d.pts_s)
                    if self._stop.is_set():
                        break  # woken early by the stop: this frame's time has not come, so it never existed
                if source.live:
                    wall = datetime.now(UTC)
                else:
                    pts0 = d.pts_s if pts0 is None else pts0
                    wall = started + timedelta(seconds=d.pts_s - pts0)
                item = _Item(
                    d.frame,
                    d.index,
                    self.session,
                    d.pts_s,
                    wall,
                    live,
                    d.keyframe,
                    decision.reason,
                    decision.score,
                    time.monotonic(),
                    decision.regions,
                )
                self._queue.put(item, self._stop)
        except SourceError as exc:
            return frames, exc
        finally:
            if recorder is not None:
                recorder.end()  # the segment closes cleanly: the outage shows as a gap, not a broken file
            source.close()
            if source.live and last_at is not None:
                self._gone_since = last_at  # until the next session's first frame, frames are missed
        return frames, None

    # -- publisher ----------------------------------------------------------------------
    def _publish_loop(self) -> None:
        while True:
            item = self._queue.get(0.2)
            if item is None:
                if self._queue.closed:
                    return
                continue
            if isinstance(item, _End):
                self._end_of_stream(item.reason)
                return
            try:
                self._publish(item)
            except Exception:
                self._drop("publish_error")
                log.warning("frame publish failed", exc_info=True, extra=self._extra)

    def _publish(self, item: _Item) -> None:
        cfg, frame = self.cfg, item.frame
        try:
            enc = encode_jpeg(
                frame,
                max_width=cfg.max_width,
                max_height=cfg.max_height,
                quality=cfg.jpeg_quality,
                max_bytes=self.max_jpeg_bytes,
            )
        except FrameTooLarge as exc:
            self._drop("too_large")
            log.warning("frame dropped: %s", exc, extra=self._extra)
            return
        meta = FrameMeta(
            camera_id=self.plan.camera_id,
            frame_id=item.index,
            source_session=item.session,
            pts_s=round(item.pts_s, 6),
            wall_ts=item.wall_ts,
            width=frame.width,
            height=frame.height,
            encoded_width=enc.width,
            encoded_height=enc.height,
            keyframe=item.keyframe,
            motion_score=None if item.score is None else round(item.score, 5),
            motion_regions=item.regions,
            sampled_reason=item.reason,
            live=item.live,
        )
        self.publisher.frame(meta, enc.jpeg)
        with self._lock:
            self.published += 1
            self.last_frame_id = item.index
        self.lag_s = time.monotonic() - item.queued_at
        cid = self.plan.camera_id
        metrics.FRAMES_PUBLISHED.labels(metrics.cam(cid)).inc()
        metrics.BYTES_PUBLISHED.labels(metrics.cam(cid)).inc(len(enc.jpeg))
        metrics.LAG.labels(metrics.cam(cid)).set(self.lag_s)
