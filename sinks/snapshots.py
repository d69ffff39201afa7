"""Snapshots are claim-checks: the analyzer writes JPEGs (boxes drawn) under data_dir/snapshots/
and puts the relative path in ObjectEvent.snapshot. Here: safe lookup and size accounting.

A snapshot ref comes from a Kafka message, so it is untrusted: it must resolve to a file
inside the snapshots directory (no `..`, no absolute paths, no symlink escapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from sinks import tables as t
from sinks.store import Store

SNAPSHOT_DIR = "snapshots"


class SnapshotMissing(LookupError):
    pass


def snapshots_root(data_dir: str | Path) -> Path:
    return (Path(data_dir) / SNAPSHOT_DIR).resolve()


def resolve_snapshot(data_dir: str | Path, ref: str | None) -> Path:
    """The file a ref names, or SnapshotMissing if there is none or it points outside the directory."""
    if not ref:
        raise SnapshotMissing("no snapshot recorded")
    root = snapshots_root(data_dir)
    rel = ref.removeprefix(f"{SNAPSHOT_DIR}/")
    if "\x00" in rel or Path(rel).is_absolute():
        raise SnapshotMissing("snapshot ref is not a relative path")
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or path.suffix.lower() not in (".jpg", ".jpeg"):
        raise SnapshotMissing("snapshot ref points outside the snapshot directory")
    if not path.is_file():
        raise SnapshotMissing("snapshot file is gone (retention or never written)")
    return path


def snapshot_ref(store: Store, snapshot_id: str) -> str | None:
    """An event id gives that event's snapshot; a track id gives the track's best (or start) one."""
    with store.engine.connect() as conn:
        ref = conn.execute(select(t.events.c.snapshot).where(t.events.c.event_id == snapshot_id)).scalar()
        if ref:
            return str(ref)
        row = conn.execute(
            select(t.tracks.c.best_snapshot, t.tracks.c.start_snapshot).where(t.tracks.c.id == snapshot_id)
        ).first()
    if row is None:
        return None
    ref = row.best_snapshot or row.start_snapshot
    return str(ref) if ref else None


@dataclass(frozen=True)
class SnapshotUsage:
    files: int
    bytes: int


def usage(data_dir: str | Path) -> SnapshotUsage:
    files = total = 0
    root = snapshots_root(data_dir)
    if root.is_dir():
        for p in root.rglob("*.jp*g"):
            files += 1
            total += p.stat().st_size
    return SnapshotUsage(files, total)
