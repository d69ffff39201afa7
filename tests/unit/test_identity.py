"""IDF1 / IDP / IDR, fragmentations and MOTA: hand-computed, then against py-motmetrics."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from sightline.eval.identity import identity_scores
from sightline.eval.match import iou
from sightline.eval.scoring import Scores, score_boxes
from sightline.eval.truth import GroundTruth
from sightline.replay import cli as replay_cli

A = (0.0, 0.0, 10.0, 20.0)
B = (50.0, 0.0, 60.0, 20.0)


def truth(tracks: dict[str, list[tuple[float, tuple[float, ...]]]], times: list[float]) -> GroundTruth:
    objects = [
        {
            "id": oid,
            "label": "person",
            "intervals": [[boxes[0][0], boxes[-1][0]]],
            "boxes": [{"t": t, "bbox": b} for t, b in boxes],
        }
        for oid, boxes in tracks.items()
    ]
    video = {"file": "x.mp4", "width": 1000, "height": 1000, "fps": 1.0, "start_s": 0.0, "end_s": times[-1]}
    return GroundTruth.model_validate(
        {"schema": "sightline.truth/1", "video": video, "times": times, "objects": objects}
    )


def test_perfect_tracking() -> None:
    times = [0.0, 1.0, 2.0, 3.0]
    gt = truth({"A": [(t, A) for t in times], "B": [(t, B) for t in times]}, times)
    preds = [(t, A, "person", "x") for t in times] + [(t, B, "person", "y") for t in times]
    s = score_boxes(preds, gt)
    assert (s.idf1, s.idp, s.idr, s.idtp, s.idfp, s.idfn) == (1.0, 1.0, 1.0, 8, 0, 0)
    assert (s.id_switches, s.fragmentations, s.mota) == (0, 0, 1.0)
    assert {o.id: o.id_track for o in s.objects} == {"A": "x", "B": "y"}
    assert "IDF1 / IDP / IDR" in s.table()


def test_swapped_identities() -> None:
    """Tracks x and y swap people halfway (4 instants). Each object overlaps each track at 2
    instants, so the best one-to-one identification gets IDTP = 2 + 2 = 4 of 8 boxes:
    IDFP = IDFN = 8 - 4 = 4, IDF1 = 2*4 / (8 + 8) = 0.5. Every box is matched per instant, so
    MOTA only sees the two switches: 1 - (0 + 0 + 2) / 8 = 0.75."""
    times = [0.0, 1.0, 2.0, 3.0]
    gt = truth({"A": [(t, A) for t in times], "B": [(t, B) for t in times]}, times)
    preds = [(t, A if t < 2 else B, "person", "x") for t in times]
    preds += [(t, B if t < 2 else A, "person", "y") for t in times]
    s = score_boxes(preds, gt)
    assert (s.tp, s.fp, s.fn) == (8, 0, 0)
    assert (s.idtp, s.idfp, s.idfn) == (4, 4, 4)
    assert (s.idf1, s.idp, s.idr) == (0.5, 0.5, 0.5)
    assert (s.id_switches, s.mota) == (2, 0.75)


def test_a_fragmented_track() -> None:
    """A is in view at 6 instants; track x follows it at 0-2, nothing at 3, track y at 4-5.
    Overlaps: A-x 3, A-y 2. IDF1 identifies A with x: IDTP 3, IDFN 6 - 3 = 3, IDFP 5 - 3 = 2,
    IDP 3/5, IDR 3/6, IDF1 = 6 / (6 + 5) = 6/11. CLEAR-MOT: 5 tp, 1 fn, one switch (x -> y) and
    one fragmentation (tracked, lost, tracked again): MOTA = 1 - (1 + 0 + 1) / 6 = 2/3."""
    times = [float(t) for t in range(6)]
    gt = truth({"A": [(t, A) for t in times]}, times)
    preds = [(t, A, "person", "x") for t in times[:3]] + [(t, A, "person", "y") for t in times[4:]]
    s = score_boxes(preds, gt)
    assert (s.idtp, s.idfp, s.idfn) == (3, 2, 3)
    assert s.idf1 == pytest.approx(6 / 11) and s.idp == pytest.approx(3 / 5) and s.idr == 0.5
    assert (s.tp, s.fn, s.id_switches, s.fragmentations) == (5, 1, 1, 1)
    assert s.mota == pytest.approx(2 / 3)
    assert s.objects[0].fragmentations == 1 and s.objects[0].id_track == "x"


def test_idf1_counts_raw_overlaps_not_the_per_instant_matching() -> None:
    """Two tracks on one person at once: only one is a tp per instant, but IDF1 pairs the
    person with whichever track overlaps it longest, from raw IoU."""
    times = [0.0, 1.0, 2.0]
    gt = truth({"A": [(t, A) for t in times]}, times)
    preds = [(t, A, "person", "x") for t in times] + [(t, A, "person", "y") for t in times[:1]]
    s = score_boxes(preds, gt)
    assert (s.tp, s.fp, s.idtp, s.idfp, s.idfn) == (3, 1, 3, 1, 0)
    assert identity_scores({}, 0, 0).idf1 == 1.0 and identity_scores({}, 3, 0).idf1 == 0.0


def test_raw_boxes_have_no_identity_and_cannot_gate_on_it() -> None:
    times = [0.0]
    s = score_boxes([(0.0, A, "person")], truth({"A": [(0.0, A)]}, times))
    assert s.idf1 is None and s.mota == 1.0 and "IDF1" not in s.table()
    with pytest.raises(ValueError, match="track ids"):
        replay_cli.check_gates(s, {"idf1": 0.5})


def test_min_idf1_gates() -> None:
    times = [0.0, 1.0, 2.0, 3.0]
    gt = truth({"A": [(t, A) for t in times], "B": [(t, B) for t in times]}, times)
    swapped = [(t, A if t < 2 else B, "person", "x") for t in times]
    swapped += [(t, B if t < 2 else A, "person", "y") for t in times]
    s = score_boxes(swapped, gt)
    assert replay_cli.check_gates(s, {"idf1": 0.6, "recall": 0.9}) == (
        ["idf1 0.500 < 0.6"],
        ["recall 1.000 >= 0.9"],
    )
    assert replay_cli.check_gates(s, {"idf1": 0.5}) == ([], ["idf1 0.500 >= 0.5"])


# -- py-motmetrics as the independent reference ----------------------------------------------


def scenario(seed: int) -> tuple[GroundTruth, list[tuple[float, tuple[float, ...], str, str]]]:
    """Five people walking in separate lanes for 30 instants, followed by noisy tracks with
    misses, clutter, a fragmented track and two people whose tracks swap ids."""
    rng = random.Random(seed)
    times = [float(t) for t in range(30)]
    boxes: dict[str, list[tuple[float, tuple[float, ...]]]] = {}
    preds: list[tuple[float, tuple[float, ...], str, str]] = []
    for k in range(5):
        first, last = rng.randint(0, 5), rng.randint(22, 29)
        boxes[str(k)] = []
        for t in times[first : last + 1]:
            x, y = 20 + 25 * t, 100 + 150 * k
            box = (x, y, x + 30, y + 60)
            boxes[str(k)].append((t, box))
            if rng.random() < 0.15:
                continue  # a miss
            track = 10 + k
            if k == 1 and t >= 15:
                track = 20  # fragmented: picked up again under a new id
            if k in (2, 3) and t >= 20:
                track = 12 + (3 - k)  # 2 and 3 swap ids
            dx, dy = rng.uniform(-6, 6), rng.uniform(-8, 8)
            preds.append((t, (x + dx, y + dy, x + 30 + dx, y + 60 + dy), "person", str(track)))
        if rng.random() < 0.5:
            t = rng.choice(times)
            preds.append((t, (900.0, 900.0, 930.0, 960.0), "person", str(30 + k)))  # clutter
    return truth(boxes, times), preds


def motmetrics_summary(gt: GroundTruth, preds: list[tuple[float, tuple[float, ...], str, str]]) -> Any:
    mm = pytest.importorskip("motmetrics")
    acc = mm.MOTAccumulator(auto_id=True)
    for t in gt.annotated_times():
        objs = [(int(o.id), b.bbox) for o in gt.objects for b in o.boxes if b.t == t]
        hyps = [(int(p[3]), p[1]) for p in preds if p[0] == t]
        dist = np.full((len(objs), len(hyps)), np.nan)  # (its iou_matrix needs numpy < 2)
        for i, (_, g) in enumerate(objs):
            for j, (_, h) in enumerate(hyps):
                v = iou(g, h)
                if v >= 0.5:
                    dist[i, j] = 1 - v
        acc.update([o for o, _ in objs], [h for h, _ in hyps], dist)
    names = ["num_matches", "num_false_positives", "num_misses", "num_switches", "num_fragmentations"]
    names += ["idtp", "idfp", "idfn", "idf1", "idp", "idr", "mota"]
    return mm.metrics.create().compute(acc, metrics=names, name="x").iloc[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_py_motmetrics(seed: int) -> None:
    gt, preds = scenario(seed)
    ours: Scores = score_boxes(preds, gt)
    ref = motmetrics_summary(gt, preds)
    # motmetrics counts a match that switched id under num_switches, not num_matches.
    hits = ref.num_matches + ref.num_switches
    assert (ours.tp, ours.fp, ours.fn) == (hits, ref.num_false_positives, ref.num_misses)
    assert (ours.idtp, ours.idfp, ours.idfn) == (ref.idtp, ref.idfp, ref.idfn)
    assert (ours.idf1, ours.idp, ours.idr) == pytest.approx((ref.idf1, ref.idp, ref.idr))
    assert (ours.id_switches, ours.fragmentations) == (ref.num_switches, ref.num_fragmentations)
    assert ours.mota == pytest.approx(ref.mota)
    assert ours.id_switches >= 2 and ours.idf1 is not None and ours.idf1 < 1  # the scenario bites
