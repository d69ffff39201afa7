"""The rule evaluator at VLM sampling rates: crossings from the path between samples, dwell in
media time, schedules in local time (across midnight and DST), counts, absence, cooldown."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bus.contracts import Alert, ObjectEvent, stable_id
from bus.rulespec import LineSpec, RuleSpec, ZoneSpec
from rules.evaluator import Evaluator

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Berlin
BOX_W, BOX_H = 0.05, 0.2
GATE = ZoneSpec(id="gate", camera="door", polygon=((0.6, 0.5), (0.8, 0.5), (0.8, 0.9), (0.6, 0.9)))
FENCE = LineSpec(id="fence", camera="door", points=((0.5, 0.0), (0.5, 1.0)), inside=(0.75, 0.5))


def event(
    track: str,
    phase: str,
    t: float,
    foot: tuple[float, float],
    *,
    frame: int | None = None,
    t0: datetime = T0,
    query: str = "red",
    label: str = "person",
    session: str = "s1",
) -> ObjectEvent:
    x, y = foot
    box = (x - BOX_W / 2, y - BOX_H, x + BOX_W / 2, y)
    box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], 1.0), min(box[3], 1.0))
    fid = frame if frame is not None else round(t * 100)
    return ObjectEvent(
        event_id=stable_id("e", track, phase, fid),
        phase=phase,
        camera_id="door",
        query_id=query,  # type: ignore[arg-type]
        query_text=query,
        track_id=track,
        label=label,
        bbox=tuple(c * 1000 for c in box),
        bbox_norm=box,  # type: ignore[arg-type]
        frame_id=fid,
        source_session=session,
        pts_s=round(t, 3),
        wall_ts=t0 + timedelta(seconds=t),
        engine="test",
        model="test",
    )


def sampled(
    track: str,
    path: Callable[[float], tuple[float, float] | None],
    fps: float,
    t_end: float,
    phase0: float = 0.0,
    offset: float = 0.0,
    **kw: object,
) -> list[ObjectEvent]:
    """One event per sample while the object is visible (start, updates, end at the last sighting).

    Samples are taken at phase0 + i/fps of the path's own time; `offset` shifts the whole walk in media time.
    """
    out: list[ObjectEvent] = []
    n = int(t_end * fps) + 1
    seen = [(offset + phase0 + i / fps, path(phase0 + i / fps)) for i in range(n)]
    seen_pts = [(t, p) for t, p in seen if p is not None]
    for i, (t, p) in enumerate(seen_pts):
        phase = "start" if i == 0 else ("end" if i == len(seen_pts) - 1 else "update")
        out.append(event(track, phase, t, p, **kw))  # type: ignore[arg-type]
    return out


def run(ev: Evaluator, events: list[ObjectEvent]) -> list[Alert]:
    alerts: list[Alert] = []
    for e in sorted(events, key=lambda e: (e.pts_s, e.track_id)):
        alerts += ev.feed(e)
    return alerts


def back_and_forth(
    speed: float, x0: float = 0.1, x1: float = 0.9, y: float = 0.7
) -> Callable[[float], tuple[float, float] | None]:
    """Left to right, then back: two crossings of x=0.5 (in, then out)."""
    leg = (x1 - x0) / speed

    def at(t: float) -> tuple[float, float] | None:
        if t < 0 or t > 2 * leg:
            return None
        return (x0 + speed * t, y) if t <= leg else (x1 - speed * (t - leg), y)

    return at


@pytest.mark.parametrize("fps", [1.0, 2.0])
@pytest.mark.parametrize("speed", [0.04, 0.1, 0.25, 0.4])  # 0.8 to 8 box widths between samples
@pytest.mark.parametrize("phase0", [0.0, 0.37])
def test_every_crossing_is_found_once_with_its_direction(fps: float, speed: float, phase0: float) -> None:
    rule = RuleSpec(id="fence-any", query="red", when={"cross": {"line": "fence", "direction": "any"}})
    ev = Evaluator([], [FENCE], [rule])
    alerts = run(ev, sampled("t1", back_and_forth(speed), fps, 60.0, phase0))
    assert [a.direction for a in alerts] == ["in", "out"]
    assert len({a.alert_id for a in alerts}) == 2
    assert all(a.line_id == "fence" and a.track_id == "t1" and a.condition == "cross" for a in alerts)


@pytest.mark.parametrize("direction", ["in", "out"])
def test_direction_filter_keeps_only_that_way(direction: str) -> None:
    rule = RuleSpec(id="r", query="red", when={"cross": {"line": "fence", "direction": direction}})
    alerts = run(Evaluator([], [FENCE], [rule]), sampled("t1", back_and_forth(0.3), 1.0, 60.0))
    assert [a.direction for a in alerts] == [direction]


def test_a_change_of_side_beyond_the_segment_is_not_a_crossing() -> None:
    short = LineSpec(id="fence", camera="door", points=((0.5, 0.0), (0.5, 0.4)), inside=(0.75, 0.2))
    rule = RuleSpec(id="r", query="red", when={"cross": {"line": "fence"}})
    ev = Evaluator([], [short], [rule])
    assert (
        run(ev, sampled("low", back_and_forth(0.3, y=0.9), 1.0, 60.0)) == []
    )  # passes below the segment's end
    assert len(run(ev, sampled("high", back_and_forth(0.3, y=0.3), 1.0, 60.0))) == 2


def test_a_diagonal_path_that_only_clips_the_segment_between_samples_is_found() -> None:
    # Samples at (0.3, 0.95) and (0.7, 0.05): both far from the line's ends, the path crosses it mid-way.
    short = LineSpec(id="fence", camera="door", points=((0.5, 0.4), (0.5, 0.6)), inside=(0.75, 0.5))
    rule = RuleSpec(id="r", query="red", when={"cross": {"line": "fence"}})
    ev = Evaluator([], [short], [rule])
    alerts = run(ev, [event("t", "start", 0.0, (0.3, 0.95)), event("t", "update", 1.0, (0.7, 0.05))])
    assert [a.direction for a in alerts] == ["in"]


def test_stopping_on_the_line_counts_once() -> None:
    rule = RuleSpec(id="r", query="red", when={"cross": {"line": "fence"}})
    path = [(0.3, 0.7), (0.5, 0.7), (0.5, 0.7), (0.7, 0.7), (0.5, 0.7), (0.3, 0.7)]
    alerts = run(
        Evaluator([], [FENCE], [rule]), [event("t", "update", float(i), p) for i, p in enumerate(path)]
    )
    assert [a.direction for a in alerts] == ["in", "out"]


def test_a_redelivered_event_raises_nothing_new_and_ids_are_stable() -> None:
    rule = RuleSpec(id="r", query="red", when={"cross": {"line": "fence"}})
    evs = sampled("t1", back_and_forth(0.3), 1.0, 60.0)
    first = run(Evaluator([], [FENCE], [rule]), evs)
    ev = Evaluator([], [FENCE], [rule])
    again = [a for e in evs for a in ev.feed(e) + ev.feed(e)]
    assert [a.alert_id for a in again] == [a.alert_id for a in first]


def dwell_path(enter_at: float, leave_at: float) -> Callable[[float], tuple[float, float] | None]:
    """Walks in at 0.1/s, reaching the gate (x=0.6) at `enter_at`; stays; leaves at `leave_at`."""

    def at(t: float) -> tuple[float, float] | None:
        if t < 0 or t > leave_at + 3:
            return None
        if t <= enter_at + 0.5:
            return (0.6 + 0.1 * (t - enter_at), 0.7)
        if t < leave_at:
            return (0.65, 0.7)
        return (0.65 + 0.1 * (t - leave_at), 0.7)

    return at


@pytest.mark.parametrize("fps", [1.0, 2.0])
@pytest.mark.parametrize("enter_at", [3.0, 3.3, 3.75])
def test_dwell_fires_within_one_sample_of_entry_plus_dwell_time(fps: float, enter_at: float) -> None:
    rule = RuleSpec(id="d", query="red", when={"dwell": {"zone": "gate", "seconds": 30}})
    alerts = run(Evaluator([GATE], [], [rule]), sampled("t", dwell_path(enter_at, 60.0), fps, 80.0))
    assert len(alerts) == 1
    due = enter_at + 30
    assert due <= alerts[0].pts_s <= due + 1 / fps + 1e-6
    assert alerts[0].zone_id == "gate" and alerts[0].seconds is not None and alerts[0].seconds >= 30


def test_leaving_before_the_dwell_time_raises_nothing_and_a_track_end_closes_the_dwell() -> None:
    rule = RuleSpec(id="d", query="red", when={"dwell": {"zone": "gate", "seconds": 30}})
    assert run(Evaluator([GATE], [], [rule]), sampled("t", dwell_path(3.0, 25.0), 1.0, 60.0)) == []
    # Seen inside from 0 to 20 s, then the track ends (lost): no dwell, and nothing later either.
    evs = [event("t", "update" if i else "start", float(i), (0.7, 0.7)) for i in range(20)]
    evs.append(event("t", "end", 20.0, (0.7, 0.7)))
    evs += [event("other", "update" if i else "start", 21.0 + i, (0.1, 0.1)) for i in range(40)]
    assert run(Evaluator([GATE], [], [rule]), evs) == []


def test_dwell_timer_advances_with_other_objects_events() -> None:
    # The dwelling object's updates are throttled (one event); a walker elsewhere keeps the clock going.
    rule = RuleSpec(id="d", query="red", when={"dwell": {"zone": "gate", "seconds": 10}})
    evs = [event("still", "start", 0.0, (0.7, 0.7))]
    evs += [event("walker", "update" if i else "start", 0.5 + i, (0.1, 0.2)) for i in range(15)]
    alerts = run(Evaluator([GATE], [], [rule]), evs)
    assert [(a.track_id, a.pts_s) for a in alerts] == [("still", 10.5)]
    assert alerts[0].event_id is None  # fired by the clock, not by one of its own events


def test_enter_and_leave_including_a_pass_through_between_samples() -> None:
    rules = [
        RuleSpec(id="in", query="red", when={"enter": {"zone": "gate"}}),
        RuleSpec(id="out", query="red", when={"leave": {"zone": "gate"}}),
    ]
    ev = Evaluator([GATE], [], rules)
    slow = run(ev, sampled("slow", back_and_forth(0.05, x0=0.4, x1=0.7), 1.0, 20.0))
    assert [(a.rule_id, a.condition) for a in slow] == [("in", "enter"), ("out", "leave")]
    # 0.5 per second at 1 fps: samples at x=0.4 and 0.9, never inside, but the path went through.
    fast = run(ev, [event("fast", "start", 0.0, (0.4, 0.7)), event("fast", "update", 1.0, (0.9, 0.7))])
    assert sorted(a.condition for a in fast) == ["enter", "leave"]


def test_count_in_zone_for_a_duration() -> None:
    rule = RuleSpec(
        id="q", query="red", when={"count": {"zone": "gate", "min": 3, "seconds": 5}}, severity="critical"
    )
    evs = []
    for k in range(3):  # three people arrive at 0, 2, 4 s and stay until 20 s
        evs += [event(f"p{k}", "update", float(t), (0.65 + 0.05 * k, 0.7)) for t in range(2 * k, 21)]
    evs += [event("p0", "end", 21.0, (0.65, 0.7))]
    evs += [event("p1", "update", float(t), (0.7, 0.7)) for t in range(22, 40)]
    alerts = run(Evaluator([GATE], [], [rule]), evs)
    assert [(a.condition, a.pts_s, a.count, a.severity) for a in alerts] == [("count", 9.0, 3, "critical")]
    assert alerts[0].track_id is None


def test_absent_fires_once_per_absence() -> None:
    rule = RuleSpec(id="desk", query="red", when={"absent": {"zone": "gate", "seconds": 10}})
    evs = [event("w", "update", float(t), (0.1, 0.1)) for t in range(0, 40)]  # someone elsewhere, all along
    evs += [event("clerk", "update", float(t), (0.7, 0.7)) for t in range(15, 20)]
    evs += [event("clerk", "end", 19.0, (0.7, 0.7))]
    alerts = run(Evaluator([GATE], [], [rule]), evs)
    assert [a.pts_s for a in alerts] == [10.0, 29.0]  # 0→10 empty; clerk 15–19; empty again from 19 → 29


def test_cooldown_keeps_a_rule_quiet_in_media_time() -> None:
    rule = RuleSpec(id="r", query="red", when={"cross": {"line": "fence"}}, cooldown_s=30)
    evs = sampled("a", back_and_forth(0.1), 1.0, 20.0)  # crossings at 4 s and 12 s
    evs += sampled("b", back_and_forth(0.1), 1.0, 20.0, offset=40.0)  # at 44 s and 52 s
    alerts = run(Evaluator([], [FENCE], [rule]), evs)
    assert [(a.track_id, a.direction) for a in alerts] == [("a", "in"), ("b", "in")]


def test_rules_match_query_or_label() -> None:
    by_label = RuleSpec(id="l", label="car", when={"cross": {"line": "fence"}})
    ev = Evaluator([], [FENCE], [by_label])
    assert run(ev, sampled("p", back_and_forth(0.3), 1.0, 60.0, label="person")) == []
    assert len(run(ev, sampled("c", back_and_forth(0.3), 1.0, 60.0, label="car"))) == 2


def test_a_rule_on_a_deleted_zone_is_disabled_with_a_reason() -> None:
    rules = [
        RuleSpec(id="d", query="red", when={"dwell": {"zone": "gate", "seconds": 1}}),
        RuleSpec(id="f", query="red", when={"cross": {"line": "fence"}}),
    ]
    ev = Evaluator([], [FENCE], rules)
    assert ev.disabled == {"d": "unknown zone 'gate'"}
    assert len(run(ev, sampled("t", back_and_forth(0.3), 1.0, 60.0))) == 2


def test_checkpoint_and_restore_continue_with_the_same_alerts() -> None:
    rules = [
        RuleSpec(id="d", query="red", when={"dwell": {"zone": "gate", "seconds": 8}}),
        RuleSpec(id="f", query="red", when={"cross": {"line": "fence"}}),
        RuleSpec(id="a", query="red", when={"absent": {"zone": "gate", "seconds": 5}}),
    ]
    evs = sorted(
        sampled("t1", dwell_path(3.0, 20.0), 1.0, 30.0)
        + sampled("t2", back_and_forth(0.1), 1.0, 30.0)
        + sampled("w", lambda t: (0.1, 0.1), 1.0, 40.0),
        key=lambda e: (e.pts_s, e.track_id),
    )
    whole = run(Evaluator([GATE], [FENCE], rules), evs)
    assert {a.rule_id for a in whole} == {"d", "f", "a"}
    for cut in (5, 17, 31):
        first = Evaluator([GATE], [FENCE], rules)
        out = [a for e in evs[:cut] for a in first.feed(e)]
        second = Evaluator([GATE], [FENCE], rules)
        import json

        second.restore("door", json.loads(json.dumps(first.state_of("door"))))
        out += [a for e in evs[cut:] for a in second.feed(e)]
        assert [a.alert_id for a in out] == [a.alert_id for a in whole]


def test_a_new_source_session_starts_afresh() -> None:
    rule = RuleSpec(id="d", query="red", when={"dwell": {"zone": "gate", "seconds": 10}})
    evs = [event("t", "update", float(t), (0.7, 0.7)) for t in range(8)]
    evs += [event("t", "update", float(t), (0.7, 0.7), session="s2") for t in range(0, 12)]
    alerts = run(Evaluator([GATE], [], [rule]), evs[:8]) + run_keep(rule, evs)
    assert [(a.source_session, a.pts_s) for a in alerts] == [("s2", 10.0)]


def run_keep(rule: RuleSpec, evs: list[ObjectEvent]) -> list[Alert]:
    ev = Evaluator([GATE], [], [rule])
    return [a for e in evs for a in ev.feed(e)]


BERLIN_2200_0600 = {"timezone": "Europe/Berlin", "from": "22:00", "to": "06:00"}


@pytest.mark.parametrize(
    ("utc", "open_"),
    [
        (datetime(2026, 1, 5, 20, 59, tzinfo=UTC), False),  # 21:59 CET
        (datetime(2026, 1, 5, 21, 0, tzinfo=UTC), True),  # 22:00 CET
        (datetime(2026, 1, 5, 23, 30, tzinfo=UTC), True),  # 00:30 next day: across midnight
        (datetime(2026, 1, 6, 4, 59, tzinfo=UTC), True),  # 05:59 CET
        (datetime(2026, 1, 6, 5, 0, tzinfo=UTC), False),  # 06:00 CET: `to` is exclusive
        (datetime(2026, 3, 28, 4, 30, tzinfo=UTC), True),  # 05:30 CET, the day before DST starts
        (datetime(2026, 3, 29, 4, 30, tzinfo=UTC), False),  # 06:30 CEST: the same UTC instant is now outside
        (datetime(2026, 3, 29, 3, 30, tzinfo=UTC), True),  # 05:30 CEST
        (datetime(2026, 10, 25, 4, 30, tzinfo=UTC), True),  # 05:30 CET after the clocks went back
        (datetime(2026, 10, 24, 4, 30, tzinfo=UTC), False),  # 06:30 CEST the day before
    ],
)
def test_schedule_across_midnight_and_dst(utc: datetime, open_: bool) -> None:
    from bus.rulespec import Schedule
    from rules.schedule import is_open

    assert is_open(Schedule.model_validate(BERLIN_2200_0600), utc) is open_


def test_a_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    from bus.rulespec import Schedule
    from rules.schedule import is_open

    fri_night = Schedule.model_validate({**BERLIN_2200_0600, "weekdays": ["fri"]})
    assert is_open(fri_night, datetime(2026, 1, 10, 2, 0, tzinfo=UTC))  # Sat 03:00 Berlin
    assert not is_open(
        fri_night, datetime(2026, 1, 9, 2, 0, tzinfo=UTC)
    )  # Fri 03:00 Berlin: Thursday's night


def test_dwell_outside_the_schedule_waits_for_the_window_to_open() -> None:
    # Berlin 21:59:00 + t. Dwell of 30 s completes at 21:59:30, outside; it fires when 22:00 comes.
    t0 = datetime(2026, 1, 5, 20, 59, tzinfo=UTC)
    rule = RuleSpec(
        id="late", query="red", when={"dwell": {"zone": "gate", "seconds": 30}}, schedule=BERLIN_2200_0600
    )
    evs = [event("t", "update", float(t), (0.7, 0.7), t0=t0) for t in range(0, 90)]
    alerts = run(Evaluator([GATE], [], [rule]), evs)
    assert [(a.pts_s, a.wall_ts) for a in alerts] == [(60.0, datetime(2026, 1, 5, 21, 0, tzinfo=UTC))]
    # In July the same rule (CEST) opens at 20:00 UTC: a dwell completing at 20:00:30 UTC fires at once.
    summer = datetime(2026, 7, 6, 20, 0, tzinfo=UTC)
    evs = [event("t", "update", float(t), (0.7, 0.7), t0=summer) for t in range(0, 40)]
    assert [a.pts_s for a in run(Evaluator([GATE], [], [rule]), evs)] == [30.0]


def test_an_instant_condition_outside_the_schedule_is_dropped() -> None:
    rule = RuleSpec(id="r", query="red", when={"cross": {"line": "fence"}}, schedule=BERLIN_2200_0600)
    day = run(Evaluator([], [FENCE], [rule]), sampled("t", back_and_forth(0.3), 1.0, 10.0))
    night = run(
        Evaluator([], [FENCE], [rule]),
        sampled("t", back_and_forth(0.3), 1.0, 10.0, t0=datetime(2026, 1, 5, 22, 0, tzinfo=UTC)),
    )
    assert day == [] and len(night) == 2
    assert math.isfinite(night[0].pts_s)


def test_a_changed_dwell_time_applies_to_objects_already_inside() -> None:
    # The evaluator skips looking at tracks that cannot be due yet; a new rule set must not
    # inherit that from the old dwell time.
    long = RuleSpec(id="d", query="red", when={"dwell": {"zone": "gate", "seconds": 30}})
    ev = Evaluator([GATE], [], [long])
    evs = [event("t", "update" if i else "start", float(i), (0.7, 0.7)) for i in range(40)]
    assert run(ev, evs[:4]) == []
    short = RuleSpec(id="d", query="red", when={"dwell": {"zone": "gate", "seconds": 5}})
    ev.set_rules([GATE], [], [short])
    assert [(a.condition, a.pts_s, a.seconds) for a in run(ev, evs[4:])] == [("dwell", 5.0, 5.0)]


def test_rules_on_one_zone_with_different_anchors_use_their_own_positions() -> None:
    # Feet below the gate (y 0.95 > 0.9), box centre inside it (y 0.85).
    feet = RuleSpec(id="feet", query="red", when={"enter": {"zone": "gate"}})
    centre = RuleSpec(id="centre", query="red", when={"enter": {"zone": "gate"}}, anchor="center")
    evs = [event("t", "start", 0.0, (0.1, 0.95)), event("t", "update", 1.0, (0.7, 0.95))]
    alerts = run(Evaluator([GATE], [], [feet, centre]), evs)
    assert [a.rule_id for a in alerts] == ["centre"]
