"""`sightline bench gating`: the cost of attention — engine calls saved by gating, tracks kept.

One clip is replayed in-process twice:

* ungated: `ingest.gate: always` and no analyzer interval, so the engine is asked about
  every sampled frame;
* gated: `ingest.gate: motion` (with its heartbeat) and a per-camera interval between
  grounding calls — the config's own if it sets them, otherwise motion and 1 s.

Targets: the gated run makes >= 5x fewer engine calls and keeps >= 95% of the ungated run's
tracks, a track being kept when a gated track overlaps it in time (one-to-one, by overlap).

The default clip is generated (a still scene, a few red figures passing, some crossing) and
answered by the scripted colour server, which boxes red figures truthfully from the pixels:
deterministic, and the same answer the model would give. `--video` replays your clip with
the configured engine instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from bus.contracts import ObjectEvent
from configs.engine import OpenAIEngineConfig
from configs.settings import Settings
from glm45v_engine import EngineError
from ingest.gating import GateName
from sightline.replay.run import ReplayResult, make_queries, run_replay
from sightline.samples import Figure, generate_clip

TARGET_RATIO = 5.0
TARGET_RETENTION = 0.95
DEFAULT_SECONDS = 150.0  # long enough for quiet stretches to dominate, as on a real still camera
MIN_SECONDS = 30.0
GATED_INTERVAL_S = 1.0  # a walking person is still seen twice within the tracker's max_missing_s
QUERY = "people"
RED = (30, 30, 220)  # BGR: the scripted colour server's default colour
SCENE_VERSION = 1  # bump when gating_scene changes, so a cached clip is regenerated


@dataclass(frozen=True)
class Span:
    """One track's extent in media time."""

    query_id: str
    track_id: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Mode:
    name: str
    gate: str
    interval_s: float
    heartbeat_s: float
    sampled: int
    published: int
    engine_calls: int
    tracks: int
    wall_s: float


def gating_scene(duration_s: float) -> list[Figure]:
    """Figures for a mostly still scene: walkers of ~10 s at a quarter, half and two-thirds of it.

    The third pass is two figures crossing each other, so tracking has to survive an overlap.
    Walk durations are fixed in seconds (people walk at walking speed); only entries scale.
    """
    walk = 10.0
    d = duration_s
    return [
        Figure(RED, 0.10 * d, 0.10 * d + walk, (0.10, 0.60), (0.90, 0.55)),
        Figure(RED, 0.35 * d, 0.35 * d + walk, (0.90, 0.50), (0.15, 0.60)),
        Figure(RED, 0.60 * d, 0.60 * d + walk, (0.10, 0.55), (0.90, 0.55)),
        Figure(RED, 0.60 * d + 3, 0.60 * d + 3 + walk, (0.88, 0.60), (0.12, 0.60)),
    ]


def scene_clip(data_dir: str | Path, duration_s: float) -> Path:
    """The generated clip, cached under the data dir (generation is deterministic)."""
    path = Path(data_dir) / "bench" / f"gating-v{SCENE_VERSION}-{duration_s:g}s.mp4"
    if not path.is_file():
        tmp = path.with_suffix(".part.mp4")
        generate_clip(tmp, duration_s=duration_s, fps=10, size=(640, 360), figures=gating_scene(duration_s))
        tmp.replace(path)  # a half-written clip from an interrupted run is never reused
    return path


def track_spans(events: Sequence[ObjectEvent]) -> list[Span]:
    """Each track's first and last media time over its start/update/end events."""
    spans: dict[tuple[str, str], tuple[float, float]] = {}
    for e in events:
        key = (e.query_id, e.track_id)
        lo, hi = spans.get(key, (e.pts_s, e.pts_s))
        spans[key] = (min(lo, e.pts_s), max(hi, e.pts_s))
    return sorted((Span(q, t, lo, hi) for (q, t), (lo, hi) in spans.items()), key=lambda s: s.start_s)


def overlap_s(a: Span, b: Span) -> float | None:
    """Seconds the two spans share (0 when they only touch), or None when they do not meet."""
    if a.query_id != b.query_id:
        return None
    lo, hi = max(a.start_s, b.start_s), min(a.end_s, b.end_s)
    return hi - lo if hi >= lo else None


def match_tracks(reference: Sequence[Span], candidate: Sequence[Span]) -> list[tuple[int, int, float]]:
    """One-to-one pairs (reference index, candidate index, overlap s) maximising total overlap.

    Only pairs that meet in time can match. A small bonus per pair makes the assignment prefer
    more matches over one long overlap, so a track split in two cannot hide another track.
    """
    if not reference or not candidate:
        return []
    bonus = 1e3  # larger than any overlap in seconds of a clip this bench replays
    gain = np.zeros((len(reference), len(candidate)))
    for i, r in enumerate(reference):
        for j, c in enumerate(candidate):
            ov = overlap_s(r, c)
            if ov is not None:
                gain[i, j] = bonus + ov
    rows, cols = linear_sum_assignment(gain, maximize=True)
    return [
        (int(i), int(j), round(float(gain[i, j] - bonus), 3))
        for i, j in zip(rows, cols, strict=True)
        if gain[i, j] > 0
    ]


def retention(reference: Sequence[Span], candidate: Sequence[Span]) -> float:
    """Share of reference tracks matched by a candidate track (1.0 when there is nothing to keep)."""
    return len(match_tracks(reference, candidate)) / len(reference) if reference else 1.0


def mode_settings(settings: Settings, gated: bool) -> Settings:
    ingest, analyzer = settings.ingest, settings.analyzer
    gate: GateName = "always"
    interval = 0.0
    if gated:
        gate = ingest.gate if ingest.gate != "always" else "motion"
        interval = analyzer.interval_s if analyzer.interval_s > 0 else GATED_INTERVAL_S
    return settings.model_copy(
        update={
            "ingest": ingest.model_copy(update={"gate": gate}),
            "analyzer": analyzer.model_copy(update={"interval_s": interval}),
        }
    )


@contextmanager
def bench_engine(settings: Settings, scripted: bool) -> Iterator[tuple[Settings, str]]:
    """The scripted colour server if asked and the config names no engine (the baseline is the default)."""
    if not scripted or settings.engine.type != "baseline":
        yield settings, settings.engine.type
        return
    from sightline.testing.scripted_scenario import STANDIN_MODEL
    from sightline.testing.scripted_server import ScriptedServer

    with ScriptedServer({"mode": "colour"}) as srv:
        # The stand-in's own model name, so the table never reads as if GLM-4.5V had answered.
        cfg = OpenAIEngineConfig(base_url=srv.base_url, api_key="x", model=STANDIN_MODEL)
        yield settings.model_copy(update={"engine": cfg}), "scripted colour server (boxes red figures)"


def run_mode(video: Path, settings: Settings, name: str, gated: bool) -> tuple[Mode, ReplayResult]:
    s = mode_settings(settings, gated)
    with tempfile.TemporaryDirectory(prefix="sightline-bench-") as tmp:
        # Snapshots of a bench run are of no use to anyone: keep them out of the data dir.
        r = run_replay(video, s.model_copy(update={"data_dir": tmp}), make_queries([QUERY], [], 30.0))
    if r.camera_state == "failed":
        raise RuntimeError(f"the video could not be read: {r.camera_reason}")
    c = r.camera_counters
    mode = Mode(
        name=name,
        gate=s.ingest.gate,
        interval_s=s.analyzer.interval_s,
        heartbeat_s=s.ingest.heartbeat_s,
        sampled=c.get("published", r.frames) + c.get("gated", 0),
        published=r.frames,
        engine_calls=r.engine_calls,
        tracks=r.tracks,
        wall_s=round(r.wall_s, 2),
    )
    return mode, r


def run_bench(video: Path, settings: Settings, *, scripted: bool = False) -> dict[str, Any]:
    """Both modes on one clip; the report as a JSON-able dict. `scripted`: red figures, colour server."""
    with bench_engine(settings, scripted) as (s, engine_desc):
        ungated, ru = run_mode(video, s, "ungated", gated=False)
        gated, rg = run_mode(video, s, "gated", gated=True)
    ref, cand = track_spans(ru.events), track_spans(rg.events)
    pairs = match_tracks(ref, cand)
    ratio = ungated.engine_calls / gated.engine_calls if gated.engine_calls else float("inf")
    kept = len(pairs) / len(ref) if ref else 1.0
    matched = {i for i, _, _ in pairs}
    # Informational: how much of the ungated tracks' time the kept tracks cover (a split or late
    # track still counts as kept above; this shows what it cost).
    ref_time = sum(x.end_s - x.start_s for x in ref)
    coverage = sum(ov for _, _, ov in pairs) / ref_time if ref_time else 1.0
    return {
        "video": str(video),
        "engine": engine_desc,
        "model": ru.model,
        "query": QUERY,
        "sample_fps": s.ingest.sample_fps,
        "modes": [asdict(ungated), asdict(gated)],
        "call_ratio": round(ratio, 3),
        "track_retention": round(kept, 4),
        "tracks_matched": len(pairs),
        "time_coverage": round(coverage, 4),
        "ungated_tracks": [asdict(x) for x in ref],
        "gated_tracks": [asdict(x) for x in cand],
        "unmatched": [asdict(ref[i]) for i in range(len(ref)) if i not in matched],
        "targets": {"call_ratio": TARGET_RATIO, "track_retention": TARGET_RETENTION},
        "met": ratio >= TARGET_RATIO and kept >= TARGET_RETENTION,
    }


def render(report: dict[str, Any]) -> str:
    head = ("mode", "gate", "interval", "sampled", "published", "engine calls", "tracks", "wall")
    rows = [head] + [
        (
            m["name"],
            m["gate"] + (f" (heartbeat {m['heartbeat_s']:g} s)" if m["gate"] != "always" else ""),
            f"{m['interval_s']:g} s",
            str(m["sampled"]),
            str(m["published"]),
            str(m["engine_calls"]),
            str(m["tracks"]),
            f"{m['wall_s']:.1f} s",
        )
        for m in report["modes"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        f"clip: {report['video']}  (sampled at {report['sample_fps']:g} fps, query {report['query']!r})",
        f"engine: {report['engine']} / {report['model']}",
        "",
        *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows),
        "",
        f"call ratio (ungated / gated): {report['call_ratio']:.2f}x  (target >= {TARGET_RATIO:g}x)",
        f"track retention: {report['tracks_matched']}/{len(report['ungated_tracks'])} = "
        f"{report['track_retention']:.1%}  (target >= {TARGET_RETENTION:.0%})",
        f"time covered by the kept tracks: {report['time_coverage']:.1%}  (informational)",
    ]
    lines += [
        f"  not kept: track {u['track_id']} {u['start_s']:.1f}-{u['end_s']:.1f} s"
        for u in report["unmatched"]
    ]
    lines.append("targets met" if report["met"] else "TARGETS MISSED")
    return "\n".join(lines)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seconds", type=float, default=DEFAULT_SECONDS,
        help=f"length of the generated clip (default {DEFAULT_SECONDS:g}, at least {MIN_SECONDS:g})",
    )  # fmt: skip
    p.add_argument("--video", help="replay this clip instead (answered by the configured engine)")
    p.add_argument("--report", help="write the report here as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.video:
        video, generated = Path(args.video), False
        if not video.is_file():
            print(f"bench gating: no such video file: {video}", file=sys.stderr)
            return 2
    else:
        video, generated = scene_clip(settings.data_dir, max(MIN_SECONDS, args.seconds)), True
    try:
        report = run_bench(video, settings, scripted=generated)
    except (EngineError, RuntimeError) as exc:
        print(f"bench gating: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["met"] else 1
