"""Identity metrics: IDF1 / IDP / IDR (Ristani et al., 2016), fragmentations, MOTA.

IDF1 asks how long each object was followed by *the same* track. Every truth trajectory is
paired with at most one track for the whole segment, by a min-cost bipartite assignment that
maximises the identity true positives (IDTP): the number of instants at which the pair's boxes
overlap by the IoU threshold. The overlaps are counted from raw IoU, independently of the
per-instant box matching (as the standard definition and py-motmetrics do). Then

    IDFN = truth boxes - IDTP,  IDFP = predicted boxes - IDTP,
    IDP = IDTP / (IDTP + IDFP),  IDR = IDTP / (IDTP + IDFN),  IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN).

A fragmented track (the object picked up again under a new id) halves IDF1 where CLEAR-MOT's
MOTA charges one ID switch. Written here rather than taken from py-motmetrics (a test checks
they agree): that package is pandas-based, pinned loosely, and would be a runtime dependency of
every `sightline replay --truth` for about fifty lines of arithmetic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from sightline.eval.match import IOU_EPS, Prediction, TruthAt, iou, normalise_label


@dataclass(frozen=True)
class Identity:
    idtp: int
    idfp: int
    idfn: int
    idp: float
    idr: float
    idf1: float
    pairs: dict[str, str]  # object id -> the track it is identified with


def identity_scores(overlaps: Mapping[tuple[str, str], int], truth_boxes: int, pred_boxes: int) -> Identity:
    """IDF1 and friends from per-(object, track) overlap counts and the box totals.

    Conventions as for P/R: IDP = 1 with no predictions, IDR = 1 with nothing to find, and
    IDF1 = 1 when there is neither (a gate refuses such a truth anyway).
    """
    pairs: dict[str, str] = {}
    idtp = 0
    candidates = [k for k, n in overlaps.items() if n > 0]
    if candidates:
        objects = sorted({o for o, _ in candidates})
        tracks = sorted({t for _, t in candidates})
        # Maximising IDTP minimises IDFP + IDFN; a pair without overlap is as good as no pair.
        cost = np.zeros((len(objects), len(tracks)))
        for o, t in candidates:
            cost[objects.index(o), tracks.index(t)] = -overlaps[(o, t)]
        for i, j in zip(*linear_sum_assignment(cost), strict=True):
            if cost[i, j] < 0:
                pairs[objects[i]] = tracks[j]
                idtp += int(-cost[i, j])
    idfn, idfp = truth_boxes - idtp, pred_boxes - idtp
    return Identity(
        idtp=idtp,
        idfp=idfp,
        idfn=idfn,
        idp=idtp / pred_boxes if pred_boxes else 1.0,
        idr=idtp / truth_boxes if truth_boxes else 1.0,
        idf1=2 * idtp / (truth_boxes + pred_boxes) if truth_boxes + pred_boxes else 1.0,
        pairs=pairs,
    )


class IdentityCounter:
    """Accumulates, instant by instant, what IDF1 and fragmentation need."""

    def __init__(self, iou_threshold: float, match_labels: bool, aliases: Mapping[str, str] | None) -> None:
        self.iou_threshold = iou_threshold
        self.match_labels = match_labels
        self.aliases = aliases
        self.overlaps: Counter[tuple[str, str]] = Counter()
        self.truth_boxes = 0
        self.pred_boxes = 0
        self.complete = True  # every prediction carried a track id
        self._state: dict[str, str] = {}  # object -> "tracked" | "lost" since its first match
        self.fragmentations: Counter[str] = Counter()

    def add(self, truth: Sequence[TruthAt], preds: Sequence[Prediction], matched: set[str]) -> None:
        """One judged instant: its truth boxes to find, the predictions that count (matched or
        false positives; those absorbed by ignored regions left out), and the matched object ids."""
        self.truth_boxes += len(truth)
        self.pred_boxes += len(preds)
        seen: set[tuple[str, str]] = set()
        for p in preds:
            if p.track_id is None:
                self.complete = False
                continue
            p_label = normalise_label(p.label, self.aliases)
            for g in truth:
                if self.match_labels and normalise_label(g.label, self.aliases) != p_label:
                    continue
                if iou(g.bbox, p.bbox) + IOU_EPS >= self.iou_threshold:
                    seen.add((g.object_id, p.track_id))
        self.overlaps.update(seen)  # a pair counts once per instant
        for g in truth:
            was = self._state.get(g.object_id)
            if g.object_id in matched:
                if was == "lost":  # tracked, lost while in view, tracked again
                    self.fragmentations[g.object_id] += 1
                self._state[g.object_id] = "tracked"
            elif was == "tracked":
                self._state[g.object_id] = "lost"

    def result(self) -> Identity | None:
        """None when predictions carry no track ids (raw boxes): identity is not defined."""
        if not self.complete:
            return None
        return identity_scores(self.overlaps, self.truth_boxes, self.pred_boxes)
