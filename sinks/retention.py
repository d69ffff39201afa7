"""Retention: rows older than `retention_days`, snapshot files older than that, and the oldest
snapshots beyond `snapshot_max_bytes`. Run by the sink every `retention_interval_s`."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete

from configs import Settings
from sinks import tables as t
from sinks.recordings import prune_recordings
from sinks.snapshots import snapshots_root
from sinks.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionReport:
    rows: dict[str, int]
    files_deleted: int
    bytes_freed: int
    bytes_kept: int


def prune_rows(store: Store, cutoff: float) -> dict[str, int]:
    """Delete what ended before `cutoff` (epoch seconds). Open tracks that are still seen stay."""
    targets = (
        (t.events, t.events.c.ts),
        (t.tracks, t.tracks.c.last_ts),
        (t.summaries, t.summaries.c.end_ts),
        (t.status, t.status.c.ts),
        (t.alerts, t.alerts.c.ts),
        (t.search_docs, t.search_docs.c.end_ts),  # what was indexed goes with what it indexed
    )
    out = {}
    with store.engine.begin() as conn:
        for table, column in targets:
            out[table.name] = int(conn.execute(delete(table).where(column < cutoff)).rowcount or 0)
    return out


def prune_snapshots(root: Path, cutoff: float, max_bytes: int) -> tuple[int, int, int]:
    """(files deleted, bytes freed, bytes kept): by age first, then oldest-first down to max_bytes."""
    if not root.is_dir():
        return 0, 0, 0
    files = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            files.append((st.st_mtime, st.st_size, p))
    files.sort()  # oldest first
    total = sum(size for _, size, _ in files)
    deleted = freed = 0
    for mtime, size, path in files:
        if mtime >= cutoff and total <= max_bytes:
            break
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        deleted, freed, total = deleted + 1, freed + size, total - size
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()  # only succeeds when empty
    return deleted, freed, total


class RetentionJob:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.root = snapshots_root(settings.data_dir)
        self.max_age_s = settings.store.retention_days * 86400
        self.max_bytes = settings.store.snapshot_max_bytes
        self.interval_s = settings.store.retention_interval_s
        self.data_dir = settings.data_dir
        self.recording = settings.recording
        self._next = time.monotonic()  # first pass right after start
        self._counters: Counter[str] = Counter()

    def run(self, now: float | None = None) -> RetentionReport:
        cutoff = (now if now is not None else time.time()) - self.max_age_s
        rows = prune_rows(self.store, cutoff)
        files, freed, kept = prune_snapshots(self.root, cutoff, self.max_bytes)
        self._counters.update({f"retention_{k}_deleted": v for k, v in rows.items()})
        self._counters["retention_snapshot_files_deleted"] += files
        self._counters["retention_snapshot_bytes_freed"] += freed
        self._counters["snapshot_bytes"] = kept  # a level, not a running total
        rec = prune_recordings(self.store.engine, self.data_dir, self.recording, cutoff + self.max_age_s)
        for why, n in rec.deleted.items():
            self._counters[f"retention_segments_{why}_deleted"] += n
        self._counters["retention_segment_bytes_freed"] += rec.bytes_freed
        self._counters["recording_bytes"] = rec.bytes_kept
        report = RetentionReport(rows, files, freed, kept)
        if files or any(rows.values()):
            log.info("retention: %s", report)
        return report

    def maybe_run(self) -> RetentionReport | None:
        if time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + self.interval_s
        try:
            return self.run()
        except Exception:  # retention must never stop the sink
            log.exception("retention pass failed")
            return None

    def counters(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self._counters.items()}
        return out
