"""The tracker at VLM sampling rates: boxes that do not overlap between samples still form one track."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analyzer.tracking import Detection, Tracker, TrackEvent
from configs.settings import TrackingConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)
W, H = 1280, 720


def walker(
    t: float,
    *,
    x0: float = 0.0,
    x1: float = 1280.0,
    t0: float = 0.0,
    t1: float = 8.0,
    y: float = 400.0,
    w: float = 80.0,
    h: float = 200.0,
) -> tuple[float, float, float, float] | None:
    if not t0 <= t <= t1:
        return None
    cx = x0 + (x1 - x0) * (t - t0) / (t1 - t0)
    return (cx - w / 2, y - h / 2, cx + w / 2, y + h / 2)


def run(tracker: Tracker, fps: float, duration: float, boxes_at) -> list[TrackEvent]:  # type: ignore[no-untyped-def]
    events: list[TrackEvent] = []
    n = int(duration * fps) + 1
    for i in range(n):
        t = i / fps
        dets = [Detection("person", b) for b in boxes_at(t) if b is not None]
        events += tracker.step(t, i, T0 + timedelta(seconds=t), dets, "s1", (W, H))
    return events


@pytest.mark.parametrize("fps", [0.5, 1.0, 2.0])
def test_one_walker_crossing_the_frame_is_one_track(fps: float) -> None:
    # 1280 px in 8 s: 320 px between samples at 0.5 fps, four box widths; boxes never overlap.
    tracker = Tracker("cam", "q", TrackingConfig(min_hits=2, max_missing_s=2.5, update_every_s=2.0))
    events = run(tracker, fps, 14.0, lambda t: [walker(t)])
    starts = [e for e in events if e.phase == "start"]
    ends = [e for e in events if e.phase == "end"]
    assert len(starts) == 1, events
    assert len(ends) == 1
    assert {e.track_id for e in events} == {starts[0].track_id}
    assert starts[0].pts_s == 0.0  # reported where it first appeared
    assert ends[0].pts_s == pytest.approx(8.0)  # last seen
    assert ends[0].closed_at is not None and ends[0].closed_at > ends[0].wall_ts


@pytest.mark.parametrize("fps", [0.5, 1.0, 2.0])
def test_two_walkers_crossing_keep_their_identities(fps: float) -> None:
    tracker = Tracker("cam", "q", TrackingConfig(min_hits=2, max_missing_s=2.5))

    def boxes(t: float) -> list[tuple[float, float, float, float] | None]:
        return [walker(t, x0=100, x1=1180, y=380), walker(t, x0=1180, x1=100, y=420)]

    events = run(tracker, fps, 12.0, boxes)
    starts = [e for e in events if e.phase == "start"]
    assert len(starts) == 2
    by_track: dict[str, list[TrackEvent]] = {}
    for e in events:
        by_track.setdefault(e.track_id, []).append(e)
    for evs in by_track.values():  # each track keeps moving in one direction: no identity swap
        xs = [(e.bbox[0] + e.bbox[2]) / 2 for e in evs if e.phase != "end"] + [
            (e.bbox[0] + e.bbox[2]) / 2 for e in evs if e.phase == "end"
        ]
        assert xs == sorted(xs) or xs == sorted(xs, reverse=True), xs


WORDINGS = ["person in red", "people in red", "woman in a red coat", "people in red", "people in red"]


def test_a_new_wording_of_the_same_object_is_the_same_track() -> None:
    """GLM names one object differently answer to answer: one track, one start, one end."""
    tracker = Tracker("cam", "q", TrackingConfig(min_hits=2, max_missing_s=1.5))
    events: list[TrackEvent] = []
    for i in range(17):  # 8 s at 2 fps, the wording changes every answer
        t = i / 2
        box = walker(t)
        dets = [Detection(WORDINGS[i % len(WORDINGS)], box)] if box else []
        events += tracker.step(t, i, T0 + timedelta(seconds=t), dets, "s", (W, H))
    events += tracker.close_all(T0, "end of stream")
    assert [e.phase for e in events].count("start") == 1
    assert [e.phase for e in events].count("end") == 1
    assert len({e.track_id for e in events}) == 1
    assert events[-1].label == "people in red"  # the most frequent wording, not the first


def test_label_is_the_most_frequent_wording_latest_on_a_tie() -> None:
    tracker = Tracker("cam", "q", TrackingConfig(min_hits=1))
    box = (100.0, 100.0, 180.0, 300.0)
    tracker.step(0.0, 0, T0, [Detection("person", box)], "s", (W, H))
    tracker.step(0.5, 1, T0, [Detection("dog", box)], "s", (W, H))
    assert len(tracker.tracks) == 1 and tracker.tracks[0].label == "dog"  # a tie: the latest
    tracker.step(1.0, 2, T0, [Detection("person", box)], "s", (W, H))
    tracker.step(1.5, 3, T0, [Detection("dog", box)], "s", (W, H))
    tracker.step(2.0, 4, T0, [Detection("person", box)], "s", (W, H))
    assert tracker.tracks[0].label == "person"  # 3 against 2


def test_two_objects_side_by_side_with_swapping_wordings_stay_two_tracks() -> None:
    tracker = Tracker("cam", "q", TrackingConfig(min_hits=2, max_missing_s=1.5))
    events: list[TrackEvent] = []
    names = ["person in red", "people in red"]
    for i in range(17):
        t = i / 2
        a, b = walker(t, y=300.0), walker(t, y=520.0)  # two walkers one body height apart
        assert a and b
        dets = [Detection(names[i % 2], a), Detection(names[(i + 1) % 2], b)]
        events += tracker.step(t, i, T0 + timedelta(seconds=t), dets, "s", (W, H))
    events += tracker.close_all(T0, "end of stream")
    assert [e.phase for e in events].count("start") == 2 and [e.phase for e in events].count("end") == 2
    for tid in {e.track_id for e in events}:  # each track stays on its own row
        ys = {round((e.bbox[1] + e.bbox[3]) / 2) for e in events if e.track_id == tid}
        assert len(ys) == 1, ys


def test_old_checkpoints_without_wordings_load() -> None:
    tracker = Tracker("cam", "q", TrackingConfig(min_hits=1))
    tracker.step(0.0, 0, T0, [Detection("person", (100.0, 100.0, 180.0, 300.0))], "s", (W, H))
    state = tracker.to_state()
    for t in state["tracks"]:
        del t["wordings"]
    other = Tracker("cam", "q", TrackingConfig(min_hits=1))
    other.load_state(state)
    other.step(0.5, 1, T0, [Detection("people", (100.0, 100.0, 180.0, 300.0))], "s", (W, H))
    assert len(other.tracks) == 1 and other.tracks[0].label == "people"


def test_single_hit_flicker_never_starts_a_track() -> None:
    tracker = Tracker("cam", "q", TrackingConfig(min_hits=2, max_missing_s=1.0))
    events = tracker.step(0.0, 0, T0, [Detection("person", (10, 10, 60, 150))], "s", (W, H))
    events += run(tracker, 2.0, 5.0, lambda t: [])
    assert events == []


def test_updates_are_throttled_by_time_and_movement() -> None:
    tracker = Tracker(
        "cam", "q", TrackingConfig(min_hits=1, update_every_s=2.0, update_move_frac=0.0, max_missing_s=5)
    )
    still = (500.0, 300.0, 580.0, 500.0)
    events = run(tracker, 2.0, 10.0, lambda t: [still])
    updates = [e for e in events if e.phase == "update"]
    assert [u.pts_s for u in updates] == [2.0, 4.0, 6.0, 8.0, 10.0]
    # Movement triggers an update before the time is due: 66.7 px per sample, an update every
    # 2 box widths (160 px) since the last emitted box -> after 3 and 6 samples.
    tracker2 = Tracker("cam", "q", TrackingConfig(min_hits=1, update_every_s=100.0, update_move_frac=2.0))
    events2 = run(tracker2, 2.0, 3.0, lambda t: [walker(t, x0=100, x1=500, t1=3.0)])
    assert [e.pts_s for e in events2 if e.phase == "update"] == [1.5, 3.0]


def test_state_round_trip_continues_the_same_tracks() -> None:
    cfg = TrackingConfig(min_hits=2, max_missing_s=2.5)
    full = run(Tracker("cam", "q", cfg), 1.0, 12.0, lambda t: [walker(t)])
    first = Tracker("cam", "q", cfg)
    part1 = [
        e
        for i in range(5)
        for e in first.step(
            float(i), i, T0 + timedelta(seconds=i), [Detection("person", walker(float(i)))], "s1", (W, H)
        )
    ]  # type: ignore[arg-type]
    resumed = Tracker("cam", "q", cfg)
    resumed.load_state(first.to_state())
    part2 = []
    for i in range(5, 13):
        t = float(i)
        dets = [Detection("person", b) for b in [walker(t)] if b is not None]
        part2 += resumed.step(t, i, T0 + timedelta(seconds=t), dets, "s1", (W, H))
    assert [(e.phase, e.track_id, e.pts_s) for e in part1 + part2] == [
        (e.phase, e.track_id, e.pts_s) for e in full
    ]


def test_source_restart_closes_tracks() -> None:
    tracker = Tracker("cam", "q", TrackingConfig(min_hits=1))
    tracker.step(5.0, 50, T0, [Detection("person", (0, 0, 50, 100))], "s1", (W, H))
    events = tracker.step(0.0, 0, T0, [Detection("person", (0, 0, 50, 100))], "s2", (W, H))
    assert [e.phase for e in events] == ["end", "start"]
    assert events[0].reason == "source restarted"
    # The end is emitted on the new session's first frame but belongs to the old session's track.
    assert [e.session for e in events] == ["s1", "s2"]
