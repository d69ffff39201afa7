"""Score predictions against a ground truth: boxes, event timing, track identity.

Two entry points share one scorer:

- `score_boxes(preds, truth, sampled=...)`: raw per-frame predictions `(t, bbox, label[, track_id])`.
  Each prediction is judged at the annotated instant nearest to its `t` (within `time_tol_s`,
  default half a frame); predictions at other instants are counted as `unjudged`. With `sampled`
  (the times of the frames the engine was asked about) only annotated instants near one of them
  are judged: a 10 fps truth is not "missed" at the frames a 2 fps engine never saw
  (`unsampled` counts them).
- `score_events(events, truth)`: `ObjectEvent`s of one camera and query. At each annotated
  instant t, a track that is alive (start.pts_s <= t <= end.pts_s, or its last event when it
  has no `end`) predicts its latest box with pts_s <= t. This measures what the event stream
  says, including boxes held between sparse updates.

Box metrics: per instant, an optimal one-to-one matching at IoU >= threshold (inclusive);
tp/fp/fn summed over instants. A prediction left over that overlaps an *ignored* truth box
(MOT conf=0 / distractor) by the threshold is dropped instead of counted as a false positive.
Conventions: precision = 1 when there are no predictions, recall = 1 when there is nothing
to find, F1 = 0 when both are 0.

Track metrics (predictions with track ids): an ID switch is counted when a truth object is
matched to a different track than at its previous matched instant (MOT style); an object is
fragmented when more than one track matched it. Tracks are associated one-to-one with objects
by co-matched instants + temporal IoU (pairs may stay unassociated rather than trade quality for
their number); for each pair, timing error = |track start - interval start| and |track end -
interval end| against the object visit the track overlaps most (gaps up to `bridge_s` bridged).
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from bus.contracts import ObjectEvent
from sightline.eval.identity import IdentityCounter
from sightline.eval.match import (
    IOU_EPS,
    Lifetime,
    Prediction,
    PredictionLike,
    TruthAt,
    as_prediction,
    associate_tracks,
    best_interval,
    iou,
    match_boxes,
    temporal_iou,
)
from sightline.eval.truth import TIME_EPS, GroundTruth

PHASE_ORDER = {"start": 0, "update": 1, "end": 2}
# Gaps in an object's intervals up to this long are bridged when timing a track against them:
# the tracker keeps a track through `analyzer.tracking.max_missing_s` (2 s by default) of absence.
BRIDGE_S = 2.0


class ObjectScore(BaseModel):
    """How one truth object fared."""

    model_config = ConfigDict(frozen=True)

    id: str
    label: str
    boxes: int
    found: int
    tracks: tuple[str, ...] = ()
    id_switches: int = 0
    fragmentations: int = 0  # times it was tracked, lost while in view, and tracked again
    id_track: str | None = None  # the track IDF1 identifies it with
    track: str | None = None
    start_error_s: float | None = None
    end_error_s: float | None = None


class Scores(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    iou_threshold: float
    times: int
    unsampled: int = 0  # annotated instants not judged because no sampled frame was near
    predictions: int
    unjudged: int
    ignored: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    mean_iou: float | None
    truth_objects: int
    tracks: int
    associated_tracks: int
    id_switches: int
    fragmented_objects: int
    # Identity (None for raw boxes without track ids); see sightline.eval.identity.
    idf1: float | None = None
    idp: float | None = None
    idr: float | None = None
    idtp: int | None = None
    idfp: int | None = None
    idfn: int | None = None
    fragmentations: int = 0
    mota: float | None = None  # 1 - (fn + fp + id switches) / truth boxes; None with nothing to find
    start_error_mean_s: float | None
    start_error_median_s: float | None
    end_error_mean_s: float | None
    end_error_median_s: float | None
    objects: tuple[ObjectScore, ...] = ()

    def table(self) -> str:
        """A fixed-width text table for terminals and logs."""

        def f(v: float | None, unit: str = "") -> str:
            return "-" if v is None else f"{v:.3f}{unit}"

        pr = f"P {f(self.precision)}  R {f(self.recall)}  F1 {f(self.f1)}"
        judged = (
            f"{self.times} ({self.predictions} predictions, {self.unjudged} unjudged, {self.ignored} ignored)"
        )
        if self.unsampled:
            judged += f"; {self.unsampled} annotated instants not sampled"
        tracks = f"{self.truth_objects} / {self.tracks} ({self.associated_tracks} associated)"
        start = f"{f(self.start_error_mean_s, ' s')} / {f(self.start_error_median_s, ' s')}"
        end = f"{f(self.end_error_mean_s, ' s')} / {f(self.end_error_median_s, ' s')}"
        rows = [
            (f"boxes @ IoU>={self.iou_threshold:g}", pr),
            ("tp / fp / fn", f"{self.tp} / {self.fp} / {self.fn}"),
            ("mean IoU of hits", f(self.mean_iou)),
            ("instants judged", judged),
            ("truth objects / tracks", tracks),
            ("ID switches", str(self.id_switches)),
            ("fragmented objects", str(self.fragmented_objects)),
        ]
        if self.idf1 is not None:
            rows += [
                ("IDF1 / IDP / IDR", f"{f(self.idf1)} / {f(self.idp)} / {f(self.idr)}"),
                ("IDTP / IDFP / IDFN", f"{self.idtp} / {self.idfp} / {self.idfn}"),
                ("fragmentations", str(self.fragmentations)),
                ("MOTA", f(self.mota)),
            ]
        rows += [
            ("start error mean / median", start),
            ("end error mean / median", end),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def score_boxes(
    preds: Iterable[PredictionLike],
    truth: GroundTruth,
    *,
    iou: float = 0.5,
    match_labels: bool = True,
    aliases: Mapping[str, str] | None = None,
    time_tol_s: float | None = None,
    sampled: Iterable[float] | None = None,
    bridge_s: float = BRIDGE_S,
) -> Scores:
    """Score raw per-frame predictions; see the module docstring for the rules.

    `sampled`: media times of every frame the engine answered (with or without boxes); None
    means every annotated instant was seen.
    """
    items = [as_prediction(p) for p in preds]
    tol = _tolerance(truth, time_tol_s)
    times = truth.annotated_times()
    if sampled is not None:
        seen = sorted(sampled)
        times = tuple(t for t in times if _nearest(seen, t, tol) is not None)
    at: dict[float, list[Prediction]] = defaultdict(list)
    unjudged = 0
    for p in items:
        t = _nearest(times, p.t, tol)
        if t is None:
            unjudged += 1
        else:
            at[t].append(p)
    spans: dict[str, list[float]] = {}
    for p in items:
        if p.track_id is not None:
            s = spans.setdefault(p.track_id, [p.t, p.t])
            s[0], s[1] = min(s[0], p.t), max(s[1], p.t)
    lifetimes = [Lifetime(track_id=k, start_s=s, end_s=e) for k, (s, e) in spans.items()]
    return _score(
        at, truth, lifetimes, iou_threshold=iou, match_labels=match_labels, aliases=aliases,
        unjudged=unjudged, source="boxes", tol=tol, judged=times, bridge_s=bridge_s,
    )  # fmt: skip


def score_events(
    events: Iterable[ObjectEvent],
    truth: GroundTruth,
    *,
    iou: float = 0.5,
    camera_id: str | None = None,
    query_id: str | None = None,
    match_labels: bool = True,
    aliases: Mapping[str, str] | None = None,
    time_tol_s: float | None = None,
    bridge_s: float = BRIDGE_S,
) -> Scores:
    """Score an event stream of ONE camera and query (filter with camera_id / query_id)."""
    chosen = [
        e for e in events
        if (camera_id is None or e.camera_id == camera_id) and (query_id is None or e.query_id == query_id)
    ]  # fmt: skip
    streams = sorted({(e.camera_id, e.query_id) for e in chosen})
    if len(streams) > 1:
        raise ValueError(
            f"events of {len(streams)} camera/query streams {streams}; pick one with camera_id= and query_id="
        )
    tracks: dict[str, list[ObjectEvent]] = defaultdict(list)
    for e in chosen:
        tracks[e.track_id].append(e)
    tol = _tolerance(truth, time_tol_s)
    at: dict[float, list[Prediction]] = defaultdict(list)
    lifetimes = []
    times = truth.annotated_times()
    for track_id, evs in sorted(tracks.items()):
        evs.sort(key=lambda e: (e.pts_s, PHASE_ORDER[e.phase]))
        life = _lifetime(track_id, evs)
        lifetimes.append(life)
        pts = [e.pts_s for e in evs]
        lo = bisect.bisect_left(times, life.start_s - tol - TIME_EPS)
        hi = bisect.bisect_right(times, life.end_s + tol + TIME_EPS)
        for t in times[lo:hi]:
            box = evs[max(bisect.bisect_right(pts, t + tol) - 1, 0)]  # latest at or before t
            at[t].append(Prediction(t=t, bbox=box.bbox, label=box.label, track_id=track_id))
    return _score(
        at, truth, lifetimes, iou_threshold=iou, match_labels=match_labels, aliases=aliases,
        unjudged=0, source="events", tol=tol, judged=times, bridge_s=bridge_s,
    )  # fmt: skip


def _lifetime(track_id: str, evs: Sequence[ObjectEvent]) -> Lifetime:
    starts = [e.pts_s for e in evs if e.phase == "start"]
    ends = [e.pts_s for e in evs if e.phase == "end"]
    # A track still open when the replay stopped ends at its last event.
    return Lifetime(
        track_id=track_id, label=evs[0].label,
        start_s=starts[0] if starts else evs[0].pts_s, end_s=ends[-1] if ends else evs[-1].pts_s,
    )  # fmt: skip


def _score(
    at: Mapping[float, Sequence[Prediction]],
    truth: GroundTruth,
    lifetimes: Sequence[Lifetime],
    *,
    iou_threshold: float,
    match_labels: bool,
    aliases: Mapping[str, str] | None,
    unjudged: int,
    source: str,
    tol: float,
    judged: Sequence[float],
    bridge_s: float,
) -> Scores:
    tp = fp = fn = ignored = 0
    hit_ious: list[float] = []
    previous: dict[str, str] = {}  # object id -> track id at its last matched instant
    switches: Counter[str] = Counter()
    seen_tracks: dict[str, set[str]] = defaultdict(set)
    co: Counter[tuple[str, str]] = Counter()
    boxes: Counter[str] = Counter()
    found: Counter[str] = Counter()
    index = _truth_index(truth)
    ident = IdentityCounter(iou_threshold, match_labels, aliases)
    for t in judged:
        real, ignore = index[t]
        preds = list(at.get(t, ()))
        pairs = match_boxes(
            real,
            preds,
            iou_threshold=iou_threshold,
            match_labels=match_labels,
            aliases=aliases,
            previous=previous,
        )
        matched = {p.pred for p in pairs}
        left = [p for j, p in enumerate(preds) if j not in matched]
        absorbed = [any(iou(p.bbox, g.bbox) + IOU_EPS >= iou_threshold for g in ignore) for p in left]
        dropped = sum(absorbed)
        ignored += dropped
        counted = [preds[p.pred] for p in pairs] + [p for p, a in zip(left, absorbed, strict=True) if not a]
        ident.add(real, counted, {real[p.truth].object_id for p in pairs})
        tp, fp, fn = tp + len(pairs), fp + len(left) - dropped, fn + len(real) - len(pairs)
        for g in real:
            boxes[g.object_id] += 1
        for pair in pairs:
            obj, track = real[pair.truth].object_id, preds[pair.pred].track_id
            hit_ious.append(pair.iou)
            found[obj] += 1
            if track is None:
                continue
            if obj in previous and previous[obj] != track:
                switches[obj] += 1
            previous[obj] = track
            seen_tracks[obj].add(track)
            co[(track, obj)] += 1
    timing = _timing(truth, lifetimes, co, bridge_s)
    identity = ident.result()
    none: tuple[str | None, float | None, float | None] = (None, None, None)
    objects = []
    for o in truth.objects:
        if o.boxes and all(b.ignore for b in o.boxes):
            continue  # only ignored boxes: nothing to find
        track, start_err, end_err = timing.get(o.id, none)
        objects.append(
            ObjectScore(
                id=o.id,
                label=o.label,
                boxes=boxes[o.id],
                found=found[o.id],
                id_switches=switches[o.id],
                fragmentations=ident.fragmentations[o.id] if identity else 0,
                id_track=identity.pairs.get(o.id) if identity else None,
                tracks=tuple(sorted(seen_tracks[o.id])),
                track=track,
                start_error_s=start_err,
                end_error_s=end_err,
            )
        )
    fragmented = sum(1 for s in seen_tracks.values() if len(s) > 1)
    in_segment = sum(1 for lt in lifetimes if _in_segment(lt, truth, tol))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    starts = [v[1] for v in timing.values() if v[1] is not None]
    ends = [v[2] for v in timing.values() if v[2] is not None]
    return Scores(
        source=source, iou_threshold=iou_threshold, times=len(judged),
        unsampled=len(truth.annotated_times()) - len(judged),
        predictions=sum(len(v) for v in at.values()), unjudged=unjudged, ignored=ignored, tp=tp, fp=fp, fn=fn,
        precision=precision, recall=recall,
        f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        mean_iou=statistics.fmean(hit_ious) if hit_ious else None,
        truth_objects=len(objects), tracks=in_segment, associated_tracks=len(timing),
        id_switches=sum(switches.values()), fragmented_objects=fragmented,
        idf1=identity.idf1 if identity else None, idp=identity.idp if identity else None,
        idr=identity.idr if identity else None, idtp=identity.idtp if identity else None,
        idfp=identity.idfp if identity else None, idfn=identity.idfn if identity else None,
        fragmentations=sum(ident.fragmentations.values()) if identity else 0,
        mota=1 - (fn + fp + sum(switches.values())) / (tp + fn) if tp + fn else None,
        start_error_mean_s=statistics.fmean(starts) if starts else None,
        start_error_median_s=statistics.median(starts) if starts else None,
        end_error_mean_s=statistics.fmean(ends) if ends else None,
        end_error_median_s=statistics.median(ends) if ends else None,
        objects=tuple(objects),
    )  # fmt: skip


def _timing(
    truth: GroundTruth, lifetimes: Sequence[Lifetime], co: Mapping[tuple[str, str], int], bridge_s: float
) -> dict[str, tuple[str, float, float]]:
    """object id -> (associated track, |start error|, |end error|).

    Track lifetimes are clipped to the annotated segment, as the truth's intervals are: a track
    that goes on after the segment ends is not late, the segment is short.
    """
    frame_s = 1.0 / truth.video.fps
    by_id = {o.id: o for o in truth.objects}
    lives = {lt.track_id: _clip(lt, truth) for lt in lifetimes}
    tiou = {(t, o): temporal_iou(lives[t], by_id[o].intervals, frame_s) for t, o in co if t in lives}
    out = {}
    for t, o in associate_tracks({k: v for k, v in co.items() if k[0] in lives}, tiou):
        span = lives[t]
        start, end = best_interval(span, by_id[o].intervals, frame_s, bridge_s)
        out[o] = (t, abs(span[0] - start), abs(span[1] - end))
    return out


def _clip(life: Lifetime, truth: GroundTruth) -> tuple[float, float]:
    v = truth.video
    start, end = max(life.start_s, v.start_s), min(life.end_s, v.end_s)
    return (start, max(start, end))


def _in_segment(life: Lifetime, truth: GroundTruth, tol: float) -> bool:
    return life.end_s >= truth.video.start_s - tol and life.start_s <= truth.video.end_s + tol


def _truth_index(truth: GroundTruth) -> dict[float, tuple[list[TruthAt], list[TruthAt]]]:
    """Annotated instant -> (boxes to find, ignored boxes); one pass, so long MOT files stay fast."""
    times = truth.annotated_times()
    index: dict[float, tuple[list[TruthAt], list[TruthAt]]] = {t: ([], []) for t in times}
    for o in truth.objects:
        for b in o.boxes:
            t = _nearest(times, b.t, 0.0)
            if t is not None:  # a box between annotated instants is not judged
                index[t][1 if b.ignore else 0].append(TruthAt(o.id, o.label, b.bbox))
    return index


def _tolerance(truth: GroundTruth, time_tol_s: float | None) -> float:
    if time_tol_s is not None:
        if time_tol_s < 0:
            raise ValueError("time_tol_s must be >= 0")
        return time_tol_s
    return 0.5 / truth.video.fps


def _nearest(times: Sequence[float], t: float, tol: float) -> float | None:
    i = bisect.bisect_left(times, t)
    near = [times[k] for k in (i - 1, i) if 0 <= k < len(times)]
    best = min(near, key=lambda x: abs(x - t), default=None)
    return best if best is not None and abs(best - t) <= tol + TIME_EPS else None
