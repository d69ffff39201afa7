"""The store suite, run against SQLite and (when the machine has it) PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from bus.contracts import Alert, CameraSpec, ControlMessage
from sightline.testing import messages as samples
from sinks.store import BadCursor, EventFilter, Store
from sinks.timeline import timeline

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"  # plain form: the store picks psycopg 3


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path}/store.db")
        yield s
        s.close()
        return
    from conftest import need, port_open

    need(port_open("127.0.0.1", 5432), "PostgreSQL is not listening on 127.0.0.1:5432")
    schema = f"t_{uuid.uuid4().hex[:12]}"  # one schema per test: parallel runs never share tables
    admin = create_engine(PG_BASE.replace("postgresql:", "postgresql+psycopg:"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    s = Store(f"{PG_BASE}?options=-csearch_path%3D{schema}")
    try:
        yield s
    finally:
        s.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_events_come_back_exactly_as_on_the_topic(store: Store) -> None:
    ev = samples.event()
    store.write([ev])
    page = store.events(EventFilter())
    assert page.items == [ev.model_dump(mode="json", by_alias=True)]
    assert page.items[0]["bbox"] == [100.0, 50.0, 200.0, 300.0]
    assert page.items[0]["schema"] == "sightline.object_event/1"


def test_replaying_everything_twice_changes_nothing(store: Store) -> None:
    batch = [
        *samples.track("cam1", "red", "t1", 0, 4),
        *samples.track("cam2", "red", "t9", 2, 8),
        samples.summary("cam1"),
        samples.status("cam1", "streaming", 1.0),
        ControlMessage(op="upsert", kind="camera", id="cam1", camera=CameraSpec(id="cam1", url="rtsp://h/x")),
        Alert(
            alert_id="a1",
            rule_id="r",
            camera_id="cam1",
            condition="enter",
            pts_s=1.0,
            wall_ts=datetime(2026, 1, 1, tzinfo=UTC),
        ),
    ]
    store.write(batch)
    before = (store.counts(), store.events(EventFilter(), limit=500).items, timeline(store, "cam1"))
    store.write(batch)
    store.write(list(reversed(batch)))
    after = (store.counts(), store.events(EventFilter(), limit=500).items, timeline(store, "cam1"))
    assert before == after
    assert before[0] == {
        "cameras": 1,
        "queries": 0,
        "events": 6,
        "tracks": 2,
        "summaries": 1,
        "status": 1,
        "alerts": 1,
    }


def test_filters_and_newest_first(store: Store) -> None:
    store.write([*samples.track("cam1", "red", "a", 0, 4), *samples.track("cam2", "blue", "b", 10, 14)])
    assert [e["phase"] for e in store.events(EventFilter(camera_id="cam1")).items] == [
        "end",
        "update",
        "start",
    ]
    assert {e["camera_id"] for e in store.events(EventFilter(query_id="blue")).items} == {"cam2"}
    assert len(store.events(EventFilter(phase="start")).items) == 2
    since = samples.T0 + timedelta(seconds=5)
    assert {e["track_id"] for e in store.events(EventFilter(since=since)).items} == {"b"}
    until = samples.T0 + timedelta(seconds=2)
    assert [e["phase"] for e in store.events(EventFilter(until=until)).items] == ["start"]
    assert store.events(EventFilter(label="nobody")).items == []


def test_cursor_pages_cover_everything_once(store: Store) -> None:
    evs = [samples.event("cam1", "q", f"t{i}", "start", i, float(i // 2)) for i in range(23)]  # ties on ts
    store.write(evs)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = store.events(EventFilter(), limit=5, cursor=cursor)
        seen += [e["event_id"] for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(e.event_id for e in evs)
    assert len(seen) == len(set(seen)) == 23
    with pytest.raises(BadCursor):
        store.events(EventFilter(), cursor="not-a-cursor")


def test_timeline_has_presence_segments_and_summary_windows(store: Store) -> None:
    store.write([*samples.track("cam1", "red", "a", 0, 4), *samples.track("cam1", "red", "b", 20, 30)])
    store.write([samples.summary("cam1", "what", 0, 10), samples.summary("cam1", "what", 10, 10)])
    store.write(samples.track("cam2", "red", "z", 0, 40))
    tl = timeline(store, "cam1")
    assert [(s.track_id, s.start, s.end, s.ended) for s in tl.segments] == [
        ("a", samples.T0, samples.T0 + timedelta(seconds=4), True),
        ("b", samples.T0 + timedelta(seconds=20), samples.T0 + timedelta(seconds=30), True),
    ]
    assert tl.segments[0].best_score == 0.95  # the update had the best score
    assert [w.start for w in tl.summaries] == [samples.T0, samples.T0 + timedelta(seconds=10)]
    assert timeline(store, "cam1", query_id="blue").segments == []
    window = timeline(store, "cam1", samples.T0 + timedelta(seconds=12), samples.T0 + timedelta(seconds=25))
    assert [s.track_id for s in window.segments] == ["b"]
    assert [w.start for w in window.summaries] == [samples.T0 + timedelta(seconds=10)]


def test_track_of_an_open_object_is_not_ended_and_grows(store: Store) -> None:
    start, update, end = samples.track("cam1", "red", "a", 0, 6)
    store.write([update])
    store.write([start])  # late arrival of the start must not shrink the segment
    (seg,) = timeline(store, "cam1").segments
    assert (seg.start, seg.end, seg.ended) == (samples.T0, samples.T0 + timedelta(seconds=3), False)
    store.write([end])
    (seg,) = timeline(store, "cam1").segments
    assert (seg.end, seg.ended) == (samples.T0 + timedelta(seconds=6), True)


def test_one_batch_equals_one_by_one(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    evs = [*samples.track("cam1", "red", "a", 0, 4), *samples.track("cam1", "red", "b", 1, 9)]
    evs.append(
        samples.event("cam1", "red", "a", "update", 25, 2.5, score=0.99, snapshot="snapshots/a-best.jpg")
    )
    evs.append(evs[0])  # a duplicate inside the batch
    fresh = store.write(evs)
    assert len(fresh) == 7  # the duplicate is not new
    other = Store(f"sqlite:///{tmp_path}/one-by-one.db")
    for ev in reversed(evs):
        other.write([ev])
    assert timeline(store, "cam1") == timeline(other, "cam1")
    seg = next(s for s in timeline(store, "cam1").segments if s.track_id == "a")
    assert seg.best_score == 0.99 and seg.snapshot == "snapshots/a-best.jpg"
    other.close()
