"""A replay with its scores: what the pytest plugin's fixture and users' scripts get back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.contracts import ObjectEvent, Summary
from configs.settings import load_settings
from sightline.eval.scoring import Scores, score_boxes, score_events
from sightline.eval.truth import load_truth
from sightline.replay.run import ReplayResult, make_queries, run_replay


@dataclass(frozen=True)
class Replayed:
    result: ReplayResult
    scores: Scores | None = None  # the events against the truth (what subscribers get)
    box_scores: Scores | None = None  # per-frame boxes against the truth (the engine alone)

    @property
    def events(self) -> list[ObjectEvent]:
        return self.result.events

    @property
    def summaries(self) -> list[Summary]:
        return self.result.summaries

    def tracks(self, query_id: str | None = None) -> dict[str, list[ObjectEvent]]:
        out: dict[str, list[ObjectEvent]] = {}
        for e in self.events:
            if query_id is None or e.query_id == query_id:
                out.setdefault(e.track_id, []).append(e)
        return out


def replay(
    video: str | Path,
    *,
    queries: Sequence[str] = ("people",),
    summaries: Sequence[str] = (),
    engine: Mapping[str, Any] | None = None,
    truth: str | Path | None = None,
    sample_fps: float | None = None,
    window_s: float = 10.0,
    data_dir: str | Path = "data",
    **overrides: Any,
) -> Replayed:
    """Replay `video` in-process and score it against `truth` if given."""
    cfg: dict[str, Any] = {"data_dir": str(data_dir), **overrides}
    if engine is not None:
        cfg["engine"] = dict(engine)
    if sample_fps is not None:
        cfg.setdefault("ingest", {})["sample_fps"] = sample_fps
    settings = load_settings(None, **cfg)
    result = run_replay(video, settings, make_queries(list(queries), list(summaries), window_s))
    if truth is None:
        return Replayed(result)
    gt = load_truth(truth, video=video)
    return Replayed(
        result,
        scores=score_events(result.events, gt) if result.events else None,
        box_scores=score_boxes(
            [(t, b, label) for t, b, label, _ in result.boxes], gt, sampled=result.frame_times
        ),
    )
