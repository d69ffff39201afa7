"""Replay in-process: a video file through the same ingest → analyzer → sink code, scored if asked.

In-process (default) the camera worker of `ingest` decodes and samples the file, the
analyzer's `FrameProcessor` answers and tracks, and, with `--store`, the sink's `Store`
writes the results. With a deterministic engine two runs give byte-identical JSONL:
frames of a file played as fast as possible carry the file's own time, ids are uuid5.
"""

from __future__ import annotations

import asyncio
import queue
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from analyzer.core import FrameProcessor, Outputs
from analyzer.snapshots import SnapshotWriter
from analyzer.tracking import Detection
from bus.contracts import CameraSpec, EndOfStream, FrameMeta, ObjectEvent, QuerySpec, StatusUpdate, Summary
from bus.control import ControlState
from configs.settings import Settings
from glm45v_engine import load_engine
from ingest.camera import CameraWorker
from ingest.plan import CameraPlan

Record = ObjectEvent | Summary


class ReplayIncomplete(RuntimeError):
    """Fewer frames reached the analyzer than the camera sampled: a replay must never cut frames."""


def check_complete(counters: dict[str, int], processed: int) -> None:
    """Raise `ReplayIncomplete` unless every sampled frame that the gate let through was processed."""
    expected = counters.get("sampled", 0) - counters.get("gated", 0)
    if processed < expected:
        raise ReplayIncomplete(
            f"{processed} of {expected} sampled frames were processed "
            f"(camera counters {dict(sorted(counters.items()))})"
        )


@dataclass
class ReplayResult:
    records: list[Record] = field(default_factory=list)  # in the order they were produced
    boxes: list[tuple[float, tuple[float, float, float, float], str, str]] = field(default_factory=list)
    frames: int = 0
    frame_times: list[float] = field(default_factory=list)  # pts_s of every processed frame
    camera_state: str = ""
    camera_reason: str = ""
    # The camera's last counters (decoded, published, gated, ...): gated + published = sampled.
    camera_counters: dict[str, int] = field(default_factory=dict)
    engine: str = ""
    model: str = ""
    engine_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    wall_s: float = 0.0

    @property
    def events(self) -> list[ObjectEvent]:
        return [r for r in self.records if isinstance(r, ObjectEvent)]

    @property
    def summaries(self) -> list[Summary]:
        return [r for r in self.records if isinstance(r, Summary)]

    @property
    def tracks(self) -> int:
        return len({(e.query_id, e.track_id) for e in self.events})

    def jsonl(self, keep_latency: bool = False) -> str:
        """Records in canonical order, one JSON object per line, as on the topics.

        Measured latencies differ between runs, so they are written as 0 unless `keep_latency`:
        the file is then a function of the video, the config and the engine's answers only.
        """
        recs = (
            self.records if keep_latency else [r.model_copy(update={"latency_ms": 0.0}) for r in self.records]
        )
        return "".join(r.model_dump_json(by_alias=True) + "\n" for r in recs)

    def table(self) -> str:
        rows = [
            (
                "camera",
                f"{self.camera_state} ({self.camera_reason})" if self.camera_reason else self.camera_state,
            ),
            ("engine", f"{self.engine} / {self.model}"),
            ("frames", str(self.frames)),
            ("engine calls", str(self.engine_calls)),
            ("tokens in/out", f"{self.tokens_in} / {self.tokens_out}"),
            ("cost", f"{self.cost:.6f}"),
            ("events", str(len(self.events))),
            ("tracks", str(self.tracks)),
            ("summaries", str(len(self.summaries))),
            ("wall time", f"{self.wall_s:.2f} s"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def canonical_order(records: Sequence[Record]) -> list[Record]:
    """Media-time order, so in-process and broker replays of the same file write the same file."""
    rank = {"start": 0, "update": 1, "end": 2}

    def key(r: Record) -> tuple[float, int, int, str]:
        if isinstance(r, ObjectEvent):
            return (r.pts_s, 0, rank[r.phase], r.event_id)
        return (r.window_end_s, 1, 0, r.summary_id)

    return sorted(records, key=key)


class _QueuePublisher:
    """Camera output into a bounded queue: the decoder waits for the analyzer, nothing is dropped."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=16)

    def frame(self, meta: FrameMeta, jpeg: bytes) -> None:
        self.q.put(("frame", (meta, jpeg)))

    def end_of_stream(self, eos: EndOfStream) -> None:
        self.q.put(("eos", eos))

    def status(self, update: StatusUpdate) -> None:
        if update.component == "camera" and update.state in ("stopped", "failed"):
            self.q.put(("done", update))


def slug(text: str, n: int) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]
    return s or f"q{n}"


def make_queries(grounding: Sequence[str], summaries: Sequence[str], window_s: float) -> list[QuerySpec]:
    out = [QuerySpec(id=slug(t, i), text=t) for i, t in enumerate(grounding)]
    out += [
        QuerySpec(id=f"summary-{slug(t, i)}"[:64], text=t, kind="summary", window_s=window_s)
        for i, t in enumerate(summaries)
    ]
    if len({q.id for q in out}) != len(out):
        raise ValueError("two queries have the same text")
    return out


def estimate_frames(video: Path, sample_fps: float) -> int | None:
    try:
        with av.open(str(video)) as c:
            dur = c.duration / 1e6 if c.duration else None
    except av.FFmpegError:
        return None
    return int(dur * sample_fps) + 1 if dur else None


def run_replay(
    video: str | Path,
    settings: Settings,
    queries: Sequence[QuerySpec],
    *,
    camera_id: str = "replay",
    progress: bool = False,
    store_url: str | None = None,
) -> ReplayResult:
    """Replay a file in-process; returns every event and summary in order, with run figures."""
    return asyncio.run(_replay(Path(video), settings, list(queries), camera_id, progress, store_url))


async def _replay(
    video: Path,
    settings: Settings,
    queries: list[QuerySpec],
    camera_id: str,
    progress: bool,
    store_url: str | None,
) -> ReplayResult:
    t0 = time.perf_counter()
    spec = CameraSpec(id=camera_id, url=str(video), realtime=False)
    plan = CameraPlan.from_spec(spec, settings.ingest)
    control = ControlState(cameras={camera_id: spec}, queries={q.id: q for q in queries})
    engine = load_engine(settings.engine)
    processor = FrameProcessor(
        engine, settings.analyzer, control, skip_stale=False, snapshots=SnapshotWriter(settings.data_dir)
    )
    result = ReplayResult(engine=engine.name, model=engine.model)

    def record_boxes(meta: FrameMeta, q: QuerySpec, dets: list[Detection]) -> None:
        result.boxes += [(meta.pts_s, d.bbox, d.label, q.id) for d in dets]

    processor.on_boxes = record_boxes
    publisher = _QueuePublisher()
    worker = CameraWorker(
        plan, settings.ingest, publisher, worker="replay", max_frame_bytes=settings.bus.max_frame_bytes
    )
    store = _open_store(store_url, settings)
    bar = _progress(video, plan.sample_fps) if progress else None
    last_wall = None
    worker.start()
    try:
        while True:
            kind, item = await asyncio.to_thread(publisher.q.get)
            if kind == "frame":
                out = await processor.process(*item)
                last_wall = item[0].wall_ts
                result.frames += 1
                result.frame_times.append(item[0].pts_s)
                if bar is not None:
                    bar.update(1)
            elif kind == "eos":
                # Tracks close at the file's own last instant, not now, so replays stay identical.
                out = await processor.finish(camera_id, wall=last_wall or item.ts)
            else:
                result.camera_state, result.camera_reason = item.state, item.reason
                result.camera_counters = {k: int(v) for k, v in item.counters.items()}
                break
            _collect(result, out, store)
    finally:
        worker.stop("replay finished")
        await asyncio.to_thread(worker.join, 10.0)
        await engine.aclose()
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()
    check_complete(result.camera_counters, result.frames)
    result.records = canonical_order(result.records)
    st = engine.stats
    result.engine_calls, result.tokens_in, result.tokens_out, result.cost = (
        st.calls,
        st.tokens_in,
        st.tokens_out,
        st.cost,
    )
    result.wall_s = time.perf_counter() - t0
    return result


def _collect(result: ReplayResult, out: Outputs, store: Any) -> None:
    batch: list[Record] = [*out.events, *out.summaries]
    result.records += batch
    if store is not None and batch:
        store.write(batch)


def _open_store(url: str | None, settings: Settings) -> Any:
    if not url:
        return None
    from sinks.search import open_search
    from sinks.store import Store

    store = Store(url)
    store.search = open_search(store.engine, settings.search)  # what the sink would index, too
    return store


def _progress(video: Path, sample_fps: float) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=estimate_frames(video, sample_fps),
        unit="frame",
        desc=video.name,
        file=sys.stderr,
        dynamic_ncols=True,
    )
