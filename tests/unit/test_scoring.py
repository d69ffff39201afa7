"""Scoring: a hand-computed example, the event path, and the edge cases."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest

from bus.contracts import ObjectEvent
from sightline.eval.match import Prediction, iou
from sightline.eval.scoring import Scores, score_boxes, score_events
from sightline.eval.truth import GroundTruth


def truth(objects: list[dict[str, Any]], times: list[float], *, fps: float = 10.0) -> GroundTruth:
    video = {"file": "x.mp4", "width": 100, "height": 100, "fps": fps, "start_s": 0.0, "end_s": 2.0}
    return GroundTruth.model_validate(
        {"schema": "sightline.truth/1", "video": video, "times": times, "objects": objects}
    )


def person(oid: str, intervals: list[list[float]], boxes: list[tuple[float, list[float]]]) -> dict[str, Any]:
    return {
        "id": oid,
        "label": "person",
        "intervals": intervals,
        "boxes": [{"t": t, "bbox": b} for t, b in boxes],
    }


def approx(x: Fraction) -> Any:
    return pytest.approx(float(x), abs=1e-12)


HAND_TRUTH = truth(
    [
        person("P", [[0.0, 1.5]], [(0.0, [0, 0, 10, 10]), (1.0, [0, 0, 10, 10])]),
        person("Q", [[0.0, 0.5]], [(0.0, [50, 50, 60, 60])]),
        person("R", [[0.8, 1.0]], [(1.0, [70, 0, 80, 20])]),
    ],
    times=[0.0, 1.0],
)
HAND_PREDS = [
    (0.0, (0, 0, 10, 10), "person", "a"),
    (0.0, (50, 50, 60, 70), "person", "b"),
    (0.0, (90, 90, 100, 100), "person", "e"),
    (1.0, (0, 0, 10, 12), "person", "c"),
    (1.0, (70, 0, 80, 8), "person", "d"),
    (1.5, (0, 0, 10, 12), "person", "c"),
]


def test_hand_computed_example() -> None:
    """Truth: 4 boxes at 2 instants (P at t=0 and t=1, Q at t=0, R at t=1); fps 10, so one frame = 0.1 s.

    Predictions and their IoU with the truth box they can match:
      t=0  a [0,0,10,10]    vs P [0,0,10,10]:  100/100            = 1     -> TP
      t=0  b [50,50,60,70]  vs Q [50,50,60,60]: 100/(100+200-100)  = 1/2   -> TP (threshold is inclusive)
      t=0  e [90,90,100,100] overlaps nothing                             -> FP
      t=1  c [0,0,10,12]    vs P:               100/120            = 5/6   -> TP
      t=1  d [70,0,80,8]    vs R [70,0,80,20]:  80/(80+200-80)     = 2/5   -> FP, and R is a FN
      t=1.5 c               no annotated instant within 0.05 s            -> unjudged
    tp=3 fp=2 fn=1: precision 3/5, recall 3/4, F1 = 2*(3/5)(3/4)/(3/5+3/4) = (9/10)/(27/20) = 2/3.
    Mean IoU of hits = (1 + 1/2 + 5/6)/3 = 7/9.

    Identity: P is matched to track a at t=0 and to c at t=1 -> 1 ID switch; P saw 2 tracks -> 1 fragmented.
    Association (co-matched instants + temporal IoU, each span widened by one frame):
      (a,P): 1 + |[0,0.1] ∩ [0,1.6]| / |∪| = 1 + 0.1/1.6 ; (c,P): 1 + |[1,1.6] ∩ [0,1.6]| / 1.6 = 1 + 0.6/1.6
      -> P goes to c (life 1.0..1.5): start error |1.0-0| = 1.0, end error |1.5-1.5| = 0.
      (b,Q): b lives 0..0, Q is [0,0.5]: start error 0, end error 0.5.
    Start errors [1.0, 0] -> mean = median = 0.5; end errors [0, 0.5] -> mean = median = 0.25.
    """
    s = score_boxes(HAND_PREDS, HAND_TRUTH)
    assert (s.tp, s.fp, s.fn, s.unjudged, s.predictions, s.ignored) == (3, 2, 1, 1, 5, 0)
    assert s.precision == approx(Fraction(3, 5))
    assert s.recall == approx(Fraction(3, 4))
    assert s.f1 == approx(Fraction(2, 3))
    assert s.mean_iou == approx(Fraction(7, 9))
    assert (s.id_switches, s.fragmented_objects) == (1, 1)
    assert (s.truth_objects, s.tracks, s.associated_tracks) == (3, 5, 2)
    assert s.start_error_mean_s == pytest.approx(0.5) and s.start_error_median_s == pytest.approx(0.5)
    assert s.end_error_mean_s == pytest.approx(0.25) and s.end_error_median_s == pytest.approx(0.25)
    by_id = {o.id: o for o in s.objects}
    assert by_id["P"].tracks == ("a", "c") and by_id["P"].track == "c" and by_id["P"].start_error_s == 1.0
    assert by_id["Q"].track == "b" and by_id["Q"].end_error_s == pytest.approx(0.5)
    assert by_id["R"].found == 0 and by_id["R"].track is None


def test_table_and_json_carry_the_figures() -> None:
    s = score_boxes(HAND_PREDS, HAND_TRUTH)
    table = s.table()
    assert "P 0.600  R 0.750  F1 0.667" in table
    assert "3 / 2 / 1" in table
    dumped = s.model_dump()
    assert dumped["tp"] == 3 and dumped["id_switches"] == 1
    assert Scores.model_validate_json(s.model_dump_json()) == s


def test_threshold_is_inclusive_at_exactly_half() -> None:
    """[0,0,2,1] vs [0,0,1,1]: intersection 1, union 2 -> IoU exactly 0.5."""
    t = truth([person("P", [[0, 0]], [(0.0, [0, 0, 2, 1])])], [0.0])
    assert iou((0, 0, 2, 1), (0, 0, 1, 1)) == 0.5
    assert score_boxes([(0.0, (0, 0, 1, 1), "person")], t, iou=0.5).tp == 1
    stricter = score_boxes([(0.0, (0, 0, 1, 1), "person")], t, iou=0.51)
    assert (stricter.tp, stricter.fp, stricter.fn) == (0, 1, 1)


def test_touching_boxes_do_not_overlap() -> None:
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    t = truth([person("P", [[0, 0]], [(0.0, [0, 0, 10, 10])])], [0.0])
    s = score_boxes([(0.0, (10, 0, 20, 10), "person")], t, iou=0.0001)
    assert (s.tp, s.fp, s.fn) == (0, 1, 1)


def test_no_predictions() -> None:
    s = score_boxes([], HAND_TRUTH)
    assert (s.tp, s.fp, s.fn) == (0, 0, 4)
    assert (s.precision, s.recall, s.f1) == (1.0, 0.0, 0.0)
    assert s.mean_iou is None and s.start_error_mean_s is None and s.tracks == 0


def test_no_truth() -> None:
    empty = truth([], [0.0, 1.0])
    s = score_boxes([(0.0, (0, 0, 5, 5), "person"), (1.0, (0, 0, 5, 5), "person")], empty)
    assert (s.tp, s.fp, s.fn, s.truth_objects) == (0, 2, 0, 0)
    assert (s.precision, s.recall, s.f1) == (0.0, 1.0, 0.0)
    nothing = score_boxes([], empty)
    assert (nothing.precision, nothing.recall, nothing.f1) == (1.0, 1.0, 1.0)


def test_label_mismatch_and_aliases() -> None:
    t = truth([person("P", [[0, 0]], [(0.0, [0, 0, 10, 10])])], [0.0])
    car = score_boxes([(0.0, (0, 0, 10, 10), "car")], t)
    assert (car.tp, car.fp, car.fn) == (0, 1, 1)
    assert score_boxes([(0.0, (0, 0, 10, 10), "car")], t, match_labels=False).tp == 1
    assert score_boxes([(0.0, (0, 0, 10, 10), "People")], t).tp == 1
    assert score_boxes([(0.0, (0, 0, 10, 10), "red person")], t).tp == 0
    assert score_boxes([(0.0, (0, 0, 10, 10), "red person")], t, aliases={"red person": "person"}).tp == 1


def test_matching_is_optimal_not_greedy() -> None:
    """Greedy by IoU takes the best pair first and then cannot pair the rest; the optimum pairs both.

    T1 [10,0,20,10], T2 [13,0,23,10]; x [11,0,21,10], y [7,0,17,10].
    x-T1 = 90/110 = 0.82 (the best pair), x-T2 = 80/120 = 0.67, y-T1 = 70/130 = 0.54, y-T2 = 40/160 = 0.25.
    Greedy: x-T1, then y has nothing left above 0.5 -> 1 TP. Optimal: y-T1 and x-T2 -> 2 TP.
    """
    t = truth(
        [person("T1", [[0, 0]], [(0.0, [10, 0, 20, 10])]), person("T2", [[0, 0]], [(0.0, [13, 0, 23, 10])])],
        [0.0],
    )
    s = score_boxes([(0.0, (11, 0, 21, 10), "person"), (0.0, (7, 0, 17, 10), "person")], t)
    assert (s.tp, s.fp, s.fn) == (2, 0, 0)
    assert s.mean_iou == approx((Fraction(80, 120) + Fraction(70, 130)) / 2)


def test_crossing_keeps_the_previous_identity() -> None:
    """Two tracks fit P equally well at t=1; the one that had P at t=0 keeps it, so no ID switch."""
    t = truth([person("P", [[0, 1]], [(0.0, [0, 0, 10, 10]), (1.0, [0, 0, 10, 10])])], [0.0, 1.0])
    preds = [
        (0.0, (0, 0, 10, 10), "person", "b"),
        (1.0, (0, 0, 10, 10), "person", "a"),
        (1.0, (0, 0, 10, 10), "person", "b"),
    ]
    s = score_boxes(preds, t)
    assert (s.tp, s.fp, s.id_switches, s.fragmented_objects) == (2, 1, 0, 0)


def test_ignored_truth_boxes_absorb_predictions() -> None:
    t = truth(
        [
            person("P", [[0, 0]], [(0.0, [0, 0, 10, 10])]),
            {
                "id": "Z", "label": "person", "intervals": [[0, 0]],
                "boxes": [{"t": 0.0, "bbox": [50, 50, 60, 60], "ignore": True}],
            },
        ],
        [0.0],
    )  # fmt: skip
    s = score_boxes([(0.0, (0, 0, 10, 10), "person"), (0.0, (50, 50, 60, 61), "person")], t)
    assert (s.tp, s.fp, s.fn, s.ignored, s.truth_objects) == (1, 0, 0, 1, 1)
    missed = score_boxes([], t)
    assert missed.fn == 1  # an ignored box is never a miss


def test_prediction_time_tolerance() -> None:
    t = truth([person("P", [[0, 1]], [(1.0, [0, 0, 10, 10])])], [1.0])
    near = score_boxes([(1.04, (0, 0, 10, 10), "person")], t)  # within half a frame at 10 fps
    assert (near.tp, near.unjudged) == (1, 0)
    far = score_boxes([(1.2, (0, 0, 10, 10), "person")], t)
    assert (far.tp, far.fn, far.unjudged) == (0, 1, 1)
    assert score_boxes([(1.2, (0, 0, 10, 10), "person")], t, time_tol_s=0.25).tp == 1


def test_bad_predictions_are_refused() -> None:
    with pytest.raises(ValueError, match="x2 >= x1"):
        score_boxes([(0.0, (10, 0, 0, 10), "person")], HAND_TRUTH)
    with pytest.raises(ValueError, match="tuple"):
        score_boxes([(0.0, (0, 0, 1, 1))], HAND_TRUTH)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="time_tol_s"):
        score_boxes([], HAND_TRUTH, time_tol_s=-1)
    assert score_boxes([Prediction(t=0.0, bbox=(0, 0, 10, 10), label="person")], HAND_TRUTH).tp == 1


# ---- the event path -------------------------------------------------------------------------------


def event(
    track: str, phase: str, t: float, bbox: tuple[float, float, float, float], **kw: Any
) -> ObjectEvent:
    fields: dict[str, Any] = {
        "event_id": f"{track}-{phase}-{t}", "phase": phase, "camera_id": "cam", "query_id": "q",
        "query_text": "people", "track_id": track, "label": "person", "bbox": bbox,
        "bbox_norm": tuple(c / 100 for c in bbox), "frame_id": round(t * 10), "pts_s": t,
        "wall_ts": datetime(2026, 1, 1, tzinfo=UTC), "engine": "test", "model": "test",
    }  # fmt: skip
    return ObjectEvent.model_validate({**fields, **kw})


def test_events_hold_the_latest_box_within_the_track_lifetime() -> None:
    """Track k: start t=0 at [0,0,10,10], update t=0.5 at [20,0,30,10], end t=1.2 (last seen) at [20,0,30,10].

    Truth P: [0,0,10,10] at t=0, [20,0,30,10] at t=1 and at t=2, interval [0, 2].
    t=0: held box = start box -> TP.  t=1: held box = the t=0.5 update -> TP.  t=2: track ended at 1.2 -> FN.
    Track m: only a start at t=1.5 far away and no end -> lives 1.5..1.5, predicts nothing at t=1 or 2.
    P ↔ k: start error 0, end error |1.2 - 2| = 0.8.
    """
    t = truth(
        [person("P", [[0, 2]], [(0.0, [0, 0, 10, 10]), (1.0, [20, 0, 30, 10]), (2.0, [20, 0, 30, 10])])],
        [0.0, 1.0, 2.0],
    )
    events = [
        event("k", "start", 0.0, (0, 0, 10, 10)),
        event("k", "update", 0.5, (20, 0, 30, 10)),
        event("k", "end", 1.2, (20, 0, 30, 10)),
        event("m", "start", 1.5, (80, 80, 90, 90)),
    ]
    s = score_events(reversed(events), t)  # order of arrival must not matter
    assert (s.source, s.tp, s.fp, s.fn, s.tracks) == ("events", 2, 0, 1, 2)
    assert s.start_error_mean_s == 0.0 and s.end_error_mean_s == pytest.approx(0.8)
    assert s.id_switches == 0


def test_events_open_track_lives_to_its_last_event() -> None:
    t = truth([person("P", [[0, 2]], [(2.0, [0, 0, 10, 10])])], [2.0])
    s = score_events([event("k", "start", 0.0, (0, 0, 10, 10)), event("k", "update", 2.0, (0, 0, 10, 10))], t)
    assert s.tp == 1 and s.end_error_mean_s == 0.0


def test_events_of_several_streams_need_a_choice() -> None:
    t = truth([person("P", [[0, 0]], [(0.0, [0, 0, 10, 10])])], [0.0])
    evs = [
        event("k", "start", 0.0, (0, 0, 10, 10)),
        event("j", "start", 0.0, (0, 0, 10, 10), query_id="other"),
    ]
    with pytest.raises(ValueError, match="camera/query streams"):
        score_events(evs, t)
    assert score_events(evs, t, query_id="q").tp == 1
    assert score_events(evs, t, query_id="other").tp == 1
    assert score_events(evs, t, camera_id="elsewhere").fn == 1


def test_timing_is_judged_inside_the_annotated_segment() -> None:
    """Segment 0..2 s. Track k starts at 0.3 and is still alive at 9 s: start error 0.3, end error 0
    (P is in view to the end of the segment and k was too). Track z lives 5..6 s, after the
    segment: it is neither a track of this segment nor a false positive."""
    t = truth([person("P", [[0, 2]], [(1.0, [0, 0, 10, 10])])], [1.0])
    events = [
        event("k", "start", 0.3, (0, 0, 10, 10)),
        event("k", "update", 9.0, (0, 0, 10, 10)),
        event("z", "start", 5.0, (0, 0, 10, 10)),
        event("z", "end", 6.0, (0, 0, 10, 10)),
    ]
    s = score_events(events, t)
    assert (s.tp, s.fp, s.tracks) == (1, 0, 1)
    assert s.start_error_mean_s == pytest.approx(0.3) and s.end_error_mean_s == 0.0
