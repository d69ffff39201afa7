"""Recording retention on SQLite and PostgreSQL: size (oldest first, one pass), age, `events` mode."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from test_store_events import store  # noqa: F401  (the SQLite/PostgreSQL fixture)

from bus.contracts import RecordedSegment, stable_id
from configs.settings import RecordingConfig
from sightline.testing import messages as samples
from sinks.recordings import available_range, prune_recordings, resolve_segment, segments_between
from sinks.store import Store

T0 = samples.T0.timestamp()


def _segments(
    db: Store, data_dir: Path, camera: str, n: int, *, mode: str = "continuous", size: int = 1000
) -> list[RecordedSegment]:
    """n back-to-back 10 s segments from T0, each a file of `size` bytes."""
    out = []
    for i in range(n):
        rel = f"{camera}/seg-{i:03d}.mp4"
        path = data_dir / "recordings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x00" * size)
        start = samples.T0 + timedelta(seconds=10 * i)
        out.append(
            RecordedSegment(
                segment_id=stable_id("segment", camera, "s", i),
                camera_id=camera,
                source_session="s",
                seq=i,
                path=rel,
                mode=mode,  # type: ignore[arg-type]
                start_ts=start,
                end_ts=start + timedelta(seconds=10),
                source_start_s=10.0 * i,
                duration_s=10.0,
                frames=250,
                bytes=size,
            )
        )
    db.write(out)
    return out


def _left(data_dir: Path, camera: str) -> list[str]:
    return sorted(p.name for p in (data_dir / "recordings" / camera).glob("*.mp4"))


def test_size_cap_deletes_the_oldest_segments_first_in_one_pass(store: Store, tmp_path: Path) -> None:  # noqa: F811
    _segments(store, tmp_path, "door", 10)
    store.write(_segments(store, tmp_path, "door", 10))  # redelivered: the index stays one row each
    cfg = RecordingConfig(max_bytes=4000)
    report = prune_recordings(store.engine, tmp_path, cfg, now=T0 + 200)
    assert report.deleted == {"size": 6} and report.bytes_freed == 6000 and report.bytes_kept == 4000
    assert _left(tmp_path, "door") == [f"seg-{i:03d}.mp4" for i in range(6, 10)]
    assert [s.path for s in segments_between(store.engine, "door", 0, T0 + 1000)] == [
        f"door/seg-{i:03d}.mp4" for i in range(6, 10)
    ]
    assert available_range(store.engine, "door") == (T0 + 60, T0 + 100)
    again = prune_recordings(store.engine, tmp_path, cfg, now=T0 + 200)
    assert again.deleted == {} and again.bytes_kept == 4000


def test_per_camera_cap_then_overall_cap_then_age(store: Store, tmp_path: Path) -> None:  # noqa: F811
    _segments(store, tmp_path, "a", 5)
    _segments(store, tmp_path, "b", 2)
    cfg = RecordingConfig(camera_max_bytes=3000, max_bytes=4000)
    report = prune_recordings(store.engine, tmp_path, cfg, now=T0 + 100)
    # a: 5 kB > 3 kB drops its two oldest; then 5 kB in all > 4 kB drops the oldest left: b's first (T0).
    assert report.deleted == {"camera_size": 2, "size": 1}
    assert _left(tmp_path, "a") == ["seg-002.mp4", "seg-003.mp4", "seg-004.mp4"]
    assert _left(tmp_path, "b") == ["seg-001.mp4"]
    old = prune_recordings(store.engine, tmp_path, RecordingConfig(max_age_days=1), now=T0 + 86400 + 35)
    assert old.deleted == {"age": 2}  # ended before T0+35: a's seg-002 and b's seg-001
    assert _left(tmp_path, "a") == ["seg-003.mp4", "seg-004.mp4"] and _left(tmp_path, "b") == []


def test_events_mode_keeps_only_segments_near_events(store: Store, tmp_path: Path) -> None:  # noqa: F811
    _segments(store, tmp_path, "gate", 10, mode="events")  # T0 .. T0+100
    _segments(store, tmp_path, "hall", 3, mode="continuous")
    store.write([samples.event("gate", t_s=46.0)])  # claims [41, 53] with pre 5 / post 7
    cfg = RecordingConfig(pre_s=5, post_s=7, settle_s=30)
    report = prune_recordings(store.engine, tmp_path, cfg, now=T0 + 100)
    # Judged: segments that ended before now - settle (T0+70); the event keeps 40-50 and 50-60.
    assert report.deleted == {"no_event": 4}  # 0-10 .. 30-40
    assert _left(tmp_path, "gate") == [f"seg-{i:03d}.mp4" for i in range(4, 10)]
    assert len(_left(tmp_path, "hall")) == 3  # continuous cameras are not judged by events
    # Later, with nothing new, the unclaimed recent ones go too; the claimed ones stay.
    assert prune_recordings(store.engine, tmp_path, cfg, now=T0 + 1000).deleted == {"no_event": 4}
    assert _left(tmp_path, "gate") == ["seg-004.mp4", "seg-005.mp4"]


def test_segment_paths_from_messages_stay_inside_the_recordings_directory(tmp_path: Path) -> None:
    (tmp_path / "recordings" / "cam").mkdir(parents=True)
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (tmp_path / "recordings" / "cam" / "ok.mp4").write_bytes(b"x")
    assert resolve_segment(tmp_path, "cam/ok.mp4").name == "ok.mp4"
    for bad in ("../secret.mp4", str(tmp_path / "secret.mp4"), "cam/../../secret.mp4", "cam/ok.mp4\x00"):
        try:
            resolve_segment(tmp_path, bad)
        except LookupError:
            continue
        raise AssertionError(f"{bad!r} was resolved")


def test_files_nobody_indexed_go_after_the_grace_period(store: Store, tmp_path: Path) -> None:  # noqa: F811
    _segments(store, tmp_path, "door", 2)
    cam = tmp_path / "recordings" / "door"
    lost, fresh = cam / "lost.mp4", cam / "being-written.mp4"
    lost.write_bytes(b"\x00" * 700)
    fresh.write_bytes(b"\x00" * 300)
    now = time.time()
    os.utime(lost, (now - 7200, now - 7200))  # its announcement never reached the sink
    os.utime(cam / "seg-000.mp4", (now - 7200, now - 7200))  # indexed: retention's own rules apply
    report = prune_recordings(
        store.engine, tmp_path, RecordingConfig(orphan_grace_s=3600, max_age_days=3650), now=now
    )
    assert report.deleted == {"orphan": 1} and report.bytes_freed == 700 and report.bytes_kept == 2000
    assert _left(tmp_path, "door") == ["being-written.mp4", "seg-000.mp4", "seg-001.mp4"]
