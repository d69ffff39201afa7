"""Retention by age (rows and snapshot files) and by snapshot bytes, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from test_store_events import store  # noqa: F401  (the SQLite/PostgreSQL fixture)

from bus.contracts import Alert
from configs import Settings
from sightline.testing import messages as samples
from sinks.alerts import AlertFilter, list_alerts
from sinks.retention import RetentionJob, prune_snapshots
from sinks.store import EventFilter, Store
from sinks.timeline import timeline

DAY = 86400.0


def _alert(alert_id: str, t_s: float) -> Alert:
    return Alert(
        alert_id=alert_id,
        rule_id="r",
        camera_id="cam1",
        condition="enter",
        pts_s=t_s,
        wall_ts=samples.T0 + timedelta(seconds=t_s),
    )


def _file(root: Path, rel: str, size: int, age_days: float, now: float) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8" + b"\x00" * (size - 2))
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def test_rows_older_than_retention_go(store: Store, make_settings: Callable[..., Settings]) -> None:  # noqa: F811
    settings = make_settings(store={"retention_days": 1})
    t0 = samples.T0.timestamp()
    store.write(
        [*samples.track("cam1", "red", "old", 0, 4), samples.summary("cam1", "w", 0, 10), _alert("a0", 0)]
    )
    store.write(
        [
            *samples.track("cam1", "red", "new", 2 * DAY, 2 * DAY + 4),
            samples.status("cam1", t_s=2 * DAY),
            _alert("a2", 2 * DAY),
        ]
    )
    job = RetentionJob(store, settings)
    report = job.run(now=t0 + 2 * DAY + 10)  # cutoff: one day before "now"
    assert report.rows == {
        "events": 3,
        "tracks": 1,
        "summaries": 1,
        "status": 0,
        "alerts": 1,
        "search_docs": 0,
    }
    assert [a["alert_id"] for a in list_alerts(store.engine, AlertFilter())[0]] == ["a2"]
    assert {e["track_id"] for e in store.events(EventFilter(), limit=50).items} == {"new"}
    assert [s.track_id for s in timeline(store, "cam1").segments] == ["new"]
    again = job.run(now=t0 + 2 * DAY + 10).rows
    assert again == {"events": 0, "tracks": 0, "summaries": 0, "status": 0, "alerts": 0, "search_docs": 0}
    assert job.counters()["retention_events_deleted"] == 3


def test_snapshots_by_age_then_by_bytes(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    root = tmp_path / "snapshots"
    ancient = _file(root, "cam1/q/a.jpg", 1000, 40, now)
    older = _file(root, "cam1/q/b.jpg", 1000, 3, now)
    newer = _file(root, "cam2/q/c.jpg", 1000, 2, now)
    newest = _file(root, "cam2/q/d.jpg", 1000, 1, now)
    deleted, freed, kept = prune_snapshots(root, cutoff=now - 30 * DAY, max_bytes=2500)
    assert (deleted, freed, kept) == (2, 2000, 2000)
    assert not ancient.exists() and not older.exists() and newer.exists() and newest.exists()
    assert prune_snapshots(root, now - 30 * DAY, 2500) == (0, 0, 2000)  # nothing more to do
    assert prune_snapshots(root, now - 30 * DAY, 0) == (2, 2000, 0)
    assert not (root / "cam1").exists()  # emptied directories are removed too
