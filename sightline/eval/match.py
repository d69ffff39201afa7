"""Matching primitives for scoring: IoU, label normalisation, one-to-one box matching per
instant, and track ↔ truth-object association. `sightline.eval.scoring` builds the metrics on these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.optimize import linear_sum_assignment

from sightline.eval.truth import BBox

# A pair scoring exactly the threshold must pass although IoU arithmetic is in floats.
IOU_EPS = 1e-9
# Cost of an infeasible box pair: larger than any possible sum of feasible costs, so the per-instant
# assignment maximises the number of feasible pairs first and only then their quality.
_INFEASIBLE = 1e6
# Words dropped from the front of a label before comparing ("a person", "the man").
_ARTICLES = frozenset({"a", "an", "the"})
PERSON_WORDS = frozenset(
    {
        "person",
        "persons",
        "people",
        "pedestrian",
        "pedestrians",
        "human",
        "humans",
        "man",
        "men",
        "woman",
        "women",
    }
)


class Prediction(BaseModel):
    """One predicted box at one instant (media seconds), optionally tied to a track."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    t: float
    bbox: BBox
    label: str = ""
    track_id: str | None = None
    score: float | None = None

    @field_validator("bbox")
    @classmethod
    def _proper(cls, v: BBox) -> BBox:
        if v[2] < v[0] or v[3] < v[1]:
            raise ValueError(f"bbox {list(v)} must have x2 >= x1 and y2 >= y1")
        return v


PredictionLike = Prediction | tuple[float, BBox, str] | tuple[float, BBox, str, str | None]


def as_prediction(p: PredictionLike) -> Prediction:
    """Accept `Prediction` or a plain `(t, bbox, label[, track_id])` tuple."""
    if isinstance(p, Prediction):
        return p
    if not isinstance(p, tuple) or len(p) not in (3, 4):
        raise ValueError(f"a prediction is a Prediction or a (t, bbox, label[, track_id]) tuple, got {p!r}")
    track = p[3] if len(p) == 4 else None
    return Prediction(t=p[0], bbox=tuple(p[1]), label=p[2], track_id=track)


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes; 0 when either has no area."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def normalise_label(label: str, aliases: Mapping[str, str] | None = None) -> str:
    """The label as compared: lower case, punctuation as spaces, spaces collapsed, a leading
    article dropped; then `aliases` (their keys normalised the same way) and people words → 'person'.
    """
    s = _clean(label)
    if aliases:
        table = {_clean(k): _clean(v) for k, v in aliases.items()}
        s = table.get(s, s)
    return "person" if s in PERSON_WORDS else s


def _clean(label: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in label.lower()).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


@dataclass(frozen=True)
class TruthAt:
    """A truth box at one instant, as the matcher sees it."""

    object_id: str
    label: str
    bbox: BBox


@dataclass(frozen=True)
class Pair:
    truth: int
    pred: int
    iou: float


def match_boxes(
    truth: Sequence[TruthAt],
    preds: Sequence[Prediction],
    *,
    iou_threshold: float,
    match_labels: bool,
    aliases: Mapping[str, str] | None = None,
    previous: Mapping[str, str] | None = None,
) -> list[Pair]:
    """Optimal one-to-one matching at one instant.

    A pair is feasible when IoU >= threshold (and labels agree if `match_labels`). The
    assignment maximises the number of feasible pairs, then prefers pairs that continue the
    previous instant's object→track correspondence (as CLEAR-MOT does, so a crossing does not
    invent ID switches), then total IoU.
    """
    if not truth or not preds:
        return []
    prev = previous or {}
    cost = np.full((len(truth), len(preds)), _INFEASIBLE)
    ious = np.zeros((len(truth), len(preds)))
    for i, g in enumerate(truth):
        g_label = normalise_label(g.label, aliases)
        for j, p in enumerate(preds):
            if match_labels and normalise_label(p.label, aliases) != g_label:
                continue
            v = iou(g.bbox, p.bbox)
            ious[i, j] = v
            if v + IOU_EPS >= iou_threshold:
                keeps = p.track_id is not None and prev.get(g.object_id) == p.track_id
                cost[i, j] = (1.0 - v) - (1.0 if keeps else 0.0)
    rows, cols = linear_sum_assignment(cost)
    return [
        Pair(int(i), int(j), float(ious[i, j]))
        for i, j in zip(rows, cols, strict=True)
        if cost[i, j] < _INFEASIBLE
    ]


class Lifetime(BaseModel):
    """When a track existed: its first and last media time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    track_id: str
    label: str = ""
    start_s: float
    end_s: float = Field(description="last time the object was seen")


def temporal_iou(
    span: tuple[float, float], intervals: Sequence[tuple[float, float]], frame_s: float
) -> float:
    """IoU on the time axis; each closed span is widened by one frame so instants have length."""
    s, e = span[0], span[1] + frame_s
    ivs = [(a, b + frame_s) for a, b in intervals]
    inter = sum(max(0.0, min(e, b) - max(s, a)) for a, b in ivs)
    union = (e - s) + sum(b - a for a, b in ivs) - inter
    return inter / union if union > 0 else 0.0


def bridge_gaps(intervals: Sequence[tuple[float, float]], gap_s: float) -> list[tuple[float, float]]:
    """Intervals with gaps of at most `gap_s` closed: a person hidden for a moment is one visit."""
    out: list[tuple[float, float]] = []
    for a, b in intervals:
        if out and a - out[-1][1] <= gap_s:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def best_interval(
    span: tuple[float, float],
    intervals: Sequence[tuple[float, float]],
    frame_s: float,
    gap_s: float = 0.0,
) -> tuple[float, float]:
    """The object interval a track most overlaps (nearest start when none overlaps), after
    bridging gaps of at most `gap_s`: a track that kept an object through a short occlusion
    is timed against the whole visit, not against one piece of it."""

    def key(iv: tuple[float, float]) -> tuple[float, float]:
        overlap = max(0.0, min(span[1] + frame_s, iv[1] + frame_s) - max(span[0], iv[0]))
        return (-overlap, abs(iv[0] - span[0]))

    return min(bridge_gaps(intervals, gap_s), key=key)


def associate_tracks(
    co_matches: Mapping[tuple[str, str], int],
    tiou: Mapping[tuple[str, str], float],
) -> list[tuple[str, str]]:
    """One-to-one track → object association for timing.

    Candidates are (track, object) pairs matched at least once at some instant; the
    assignment maximises the sum of co-matched instants + temporal IoU (tIoU <= 1 breaks ties)
    over the chosen pairs. Tracks and objects may stay unassociated: a pair that was never
    co-matched costs 0 (as not pairing), so the number of pairs is never bought with quality —
    a long track on A with one stray box on B stays with A even if that leaves B without a track.
    """
    pairs = [k for k, n in co_matches.items() if n > 0]
    if not pairs:
        return []
    tracks = sorted({t for t, _ in pairs})
    objects = sorted({o for _, o in pairs})
    cost = np.zeros((len(tracks), len(objects)))  # every candidate's cost is < 0
    for t, o in pairs:
        cost[tracks.index(t), objects.index(o)] = -(co_matches[(t, o)] + tiou.get((t, o), 0.0))
    rows, cols = linear_sum_assignment(cost)
    return sorted((tracks[i], objects[j]) for i, j in zip(rows, cols, strict=True) if cost[i, j] < 0)
