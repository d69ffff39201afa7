"""The SQLite store's meaning leg: every stored vector in memory, an ANN graph over them at scale.

`VectorCache` holds every vector of `search_docs` in one float32 matrix, with the columns the
filters need (kind, camera, query, label, start, end), refreshed before each query from the
rows whose `vseq` is newer than the last one read (the writer bumps `vseq` when a row's vector
or its times change, so the cache's times are exact).

A query is answered
- by the ANN graph (`sinks.ann`, usearch) when the store is large (`ANN_MIN_ROWS`) and the
  filters keep many rows: the graph is asked for enough neighbours that k survive the filter
  (k × rows / kept × 2); when fewer survive, exactly;
- exactly otherwise: one product of the query with the rows the filters keep (a camera or a
  day of a million tracks is ~30,000 rows: a few milliseconds), or with all rows (small stores).

A new graph over more than `BACKGROUND_ROWS` vectors (a first query on a big store, or after a
reindex) is built in a thread — minutes for a million on a busy machine — while queries are
answered exactly. The graph and the cache's arrays are saved next to the database file after
large refreshes and when a graph is complete, so a restarted reader reads only what changed
since (`<db>.search-vectors.npz` and `.usearch`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, text

from sinks.ann import Ann, make_ann

if TYPE_CHECKING:
    from sinks.search import SearchIndex
    from sinks.search_rank import SearchFilter

log = logging.getLogger(__name__)
KINDS = {"track": 0, "summary": 1}
ANN_MIN_ROWS = 20_000  # below this an exact product is ~1 ms: no graph is kept
EXACT_ROWS = 60_000  # a filter keeping at most this many rows is scored exactly over them
ANN_MAX_K = 20_000  # never ask the graph for more neighbours than this (then: exact)
SAVE_EVERY = 50_000  # vectors read since the last save that make the next save worth its time
BACKGROUND_ROWS = 50_000  # a new graph over more vectors is built in a thread (exact meanwhile)
FILTER_COLUMNS = ("camera_id", "query_id", "label")

_CACHES: dict[int, VectorCache] = {}
_CACHES_LOCK = threading.Lock()


def index_cache(index: SearchIndex) -> VectorCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(id(index))
        if cache is None or cache.dim != index.signature.dim:
            cache = _CACHES[id(index)] = VectorCache(
                index.signature.dim, saved_path(index), index.signature.describe()
            )
        return cache


def saved_path(index: SearchIndex) -> Path | None:
    """`<database file>.search-vectors` for a file-backed SQLite store, else None (nothing saved)."""
    url = index.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(f"{url.database}.search-vectors")


class VectorCache:
    """Every stored vector in one float32 matrix, with the filter columns; see the module doc."""

    def __init__(self, dim: int, path: Path | None = None, signature: str = "") -> None:
        self.dim = dim
        self.path = path
        self.signature = signature
        self._lock = threading.Lock()
        self.generation = 0  # bumped by every reset: a graph built for an older one is dropped
        self._reset()
        self._loaded = path is None  # loading waits for the first refresh (it needs a connection)

    def _reset(self) -> None:
        dim = self.dim
        self.n = 0
        self.vseq = 0
        self.last_seq = 0  # the row that carries `vseq` (checks a saved copy belongs to this store)
        self.vec = np.zeros((0, dim), dtype=np.float32)
        self.seq = np.zeros(0, dtype=np.int64)
        self.kind = np.zeros(0, dtype=np.int8)
        self.start = np.zeros(0, dtype=np.float64)
        self.end = np.zeros(0, dtype=np.float64)
        self.codes: dict[str, np.ndarray[Any, Any]] = {c: np.zeros(0, dtype=np.int32) for c in FILTER_COLUMNS}
        self.vocab: dict[str, dict[str, int]] = {c: {} for c in FILTER_COLUMNS}
        self.alive = np.zeros(0, dtype=bool)
        self.dead = 0  # rows retention deleted: masked out here, removed from the graph
        self.low = np.inf  # the earliest end among the live rows
        self.pos: dict[int, int] = {}
        self.ann: Ann | None = None
        self.ann_n = 0  # positions [0, ann_n) are in the graph (less the dead)
        self.ann_missing = False
        self.builder: threading.Thread | None = None
        self.dirty: set[int] = set()  # positions whose vector changed while the graph was built
        self.generation += 1
        self.unsaved = 0

    def _grow(self, need: int) -> None:
        cap = len(self.seq)
        if need <= cap:
            return
        new = max(need, cap * 2, 1024)
        self.vec = np.resize(self.vec, (new, self.dim))
        self.seq = np.resize(self.seq, new)
        self.kind = np.resize(self.kind, new)
        self.start = np.resize(self.start, new)
        self.end = np.resize(self.end, new)
        self.alive = np.resize(self.alive, new)
        self.codes = {c: np.resize(a, new) for c, a in self.codes.items()}

    # -- reading the store ---------------------------------------------------------------------

    def refresh(self, conn: Connection) -> None:
        if not self._loaded:
            self._loaded = True
            self._load(conn)
        top = conn.execute(text("SELECT max(vseq) FROM search_docs")).scalar()
        if int(top or 0) < self.vseq:  # a reindex started the versions again
            self._reset()
        changed: list[int] = []
        read = 0
        while True:
            rows = conn.execute(
                text(
                    "SELECT seq, vseq, kind, camera_id, query_id, label, start_ts, end_ts, vec "
                    "FROM search_docs WHERE vseq > :v AND vec IS NOT NULL ORDER BY vseq LIMIT 50000"
                ),
                {"v": self.vseq},
            ).all()
            if not rows:
                break
            read += len(rows)
            self._grow(self.n + len(rows))
            for r in rows:
                v = np.frombuffer(r.vec, dtype="<f4")
                i = self.pos.get(int(r.seq))
                if i is None:
                    i = self.pos[int(r.seq)] = self.n
                    self.n += 1
                elif not np.array_equal(self.vec[i], v):
                    changed.append(i)
                self.vec[i] = v
                self.seq[i], self.kind[i] = r.seq, KINDS.get(r.kind, 9)
                self.start[i], self.end[i], self.alive[i] = r.start_ts, r.end_ts, True
                self.low = min(self.low, r.end_ts)
                for c in FILTER_COLUMNS:
                    vocab = self.vocab[c]
                    self.codes[c][i] = vocab.setdefault(getattr(r, c), len(vocab))
            self.vseq, self.last_seq = int(rows[-1].vseq), int(rows[-1].seq)
        if self._forget_deleted(conn):  # after reading: the times here are the rows' own again
            self.refresh(conn)  # mostly deleted: read from scratch
            return
        self._sync_ann(changed)
        self.unsaved += read
        if self.unsaved >= SAVE_EVERY:
            self._save()

    def _forget_deleted(self, conn: Connection) -> bool:
        """Retention deletes the rows that ended before a cut-off: the live rows' earliest end
        (one index lookup) tells whether any of ours went, without counting a million rows."""
        if not self.n:
            return False
        m = conn.execute(text("SELECT min(end_ts) FROM search_docs")).scalar()
        if m is None:
            self._reset()
            return False
        if self.low >= float(m):
            return False
        n = self.n
        gone = np.flatnonzero(self.alive[:n] & (self.end[:n] < float(m)))
        self.alive[gone] = False
        self.dead += len(gone)
        for i in gone:
            self.pos.pop(int(self.seq[i]), None)
        if self.ann is not None and len(gone):
            self.ann.remove(gone[gone < self.ann_n].astype(np.int64))
        live = self.end[:n][self.alive[:n]]
        self.low = float(live.min()) if len(live) else np.inf
        if self.dead > n // 2:  # mostly gone: read the store again
            self._reset()
            return True
        return False

    def _sync_ann(self, changed: list[int]) -> None:
        if self.builder is not None:  # the graph is being built: it takes these when it is done
            self.dirty.update(changed)
            return
        if self.ann is None and self.n >= ANN_MIN_ROWS and not self.ann_missing:
            if self.n > BACKGROUND_ROWS:
                self._build_in_background()
                return
            self.ann = make_ann(self.dim)
            self.ann_missing = self.ann is None  # usearch is not installed: exact, and no retrying
            self.ann_n = 0
        changed = [i for i in changed if i < self.ann_n]
        if self.ann is None or (self.ann_n == self.n and not changed):
            return
        if changed:
            keys = np.asarray(sorted(set(changed)), dtype=np.int64)
            self.ann.replace(keys, self.vec[keys])
        t = time.monotonic()
        for lo in range(self.ann_n, self.n, 10_000):
            hi = min(self.n, lo + 10_000)
            self.ann.add(np.arange(lo, hi, dtype=np.int64), self.vec[lo:hi])
        if self.n - self.ann_n > 10_000:
            log.info(
                "search: %d vectors added to the ANN graph in %.0f s",
                self.n - self.ann_n,
                time.monotonic() - t,
            )
        self.ann_n = self.n

    def _build_in_background(self) -> None:
        """A million vectors take minutes to insert on a busy machine: queries are answered
        exactly meanwhile, and the graph is swapped in (and saved) when it is complete."""
        ann = make_ann(self.dim)
        if ann is None:
            self.ann_missing = True
            return
        target, vec, generation = self.n, self.vec, self.generation
        self.dirty = set()

        def build() -> None:
            t = time.monotonic()
            for lo in range(0, target, 10_000):
                hi = min(target, lo + 10_000)
                ann.add(np.arange(lo, hi, dtype=np.int64), vec[lo:hi])
            with self._lock:
                if self.builder is threading.current_thread():
                    self.builder = None
                if generation != self.generation:
                    return  # the cache was reset meanwhile
                n = self.n
                dirty = np.asarray(sorted(i for i in self.dirty if i < target), dtype=np.int64)
                self.dirty = set()
                ann.replace(dirty, self.vec[dirty])
                for lo in range(target, n, 10_000):
                    hi = min(n, lo + 10_000)
                    ann.add(np.arange(lo, hi, dtype=np.int64), self.vec[lo:hi])
                ann.remove(np.flatnonzero(~self.alive[:n]).astype(np.int64))
                self.ann, self.ann_n = ann, n
                log.info("search: ANN graph over %d vectors built in %.0f s", n, time.monotonic() - t)
                self._save()

        self.builder = threading.Thread(target=build, name="search-ann-build", daemon=True)
        self.builder.start()

    def wait_for_graph(self, timeout: float | None = None) -> None:
        """Until a graph being built in the background is in use (benchmarks, tests)."""
        builder = self.builder
        if builder is not None:
            builder.join(timeout)
        with self._lock:  # a builder that already let go of `builder` swaps and saves under the lock
            pass

    # -- answering -----------------------------------------------------------------------------

    def _mask(self, flt: SearchFilter) -> np.ndarray[Any, Any] | None:
        n = self.n
        mask: np.ndarray[Any, Any] | None = self.alive[:n] if self.dead else None

        def narrow(m: np.ndarray[Any, Any]) -> None:
            nonlocal mask
            mask = m if mask is None else mask & m

        for c, value in (("camera_id", flt.camera_id), ("query_id", flt.query_id), ("label", flt.label)):
            if value is not None:
                narrow(self.codes[c][:n] == self.vocab[c].get(value, -1))
        if flt.kind is not None:
            narrow(self.kind[:n] == KINDS[flt.kind])
        if flt.until is not None:
            narrow(self.start[:n] < flt.until)
        if flt.since is not None:
            narrow(self.end[:n] >= flt.since)
        return mask

    def top(self, conn: Connection, qv: np.ndarray[Any, Any], flt: SearchFilter, k: int) -> dict[int, float]:
        """seq → cosine of the (about) k most similar rows that pass the filter."""
        q = np.ascontiguousarray(qv, dtype=np.float32)
        with self._lock:
            self.refresh(conn)
            n = self.n
            mask = self._mask(flt)
            kept = n if mask is None else int(np.count_nonzero(mask))
            if kept == 0:
                return {}
            if self.ann is not None and self.ann_n == n and kept > EXACT_ROWS:
                want = k if mask is None else int(k * n / kept * 2)
                if want <= ANN_MAX_K:
                    keys, sims = self.ann.search(q, want)
                    if mask is not None:
                        ok = mask[keys]
                        keys, sims = keys[ok], sims[ok]
                    if len(keys) >= min(k, kept):
                        return _best(self.seq[keys], sims, k)
            if mask is None:
                sims = self.vec[:n] @ q
                seqs = self.seq[:n]
            else:
                rows = np.flatnonzero(mask)
                sims = self.vec[rows] @ q
                seqs = self.seq[rows]
        return _best(seqs, sims, k)

    def memory_bytes(self) -> int:
        return self.n * self.dim * 4 + (self.ann.memory_bytes() if self.ann is not None else 0)

    # -- saving and loading --------------------------------------------------------------------

    def _files(self) -> tuple[Path, Path]:
        assert self.path is not None
        return Path(f"{self.path}.npz"), Path(f"{self.path}.usearch")

    def _save(self) -> None:
        self.unsaved = 0
        if self.path is None:
            return
        arrays_path, ann_path = self._files()
        n = self.n
        meta = {
            "signature": self.signature,
            "vseq": self.vseq,
            "last_seq": self.last_seq,
            "vocab": self.vocab,
            "ann_n": self.ann_n if self.ann is not None else 0,
            "ann_size": self.ann.size if self.ann is not None else 0,
        }
        try:
            tmp = arrays_path.with_suffix(".tmp.npz")
            arrays: dict[str, np.ndarray[Any, Any]] = {
                "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                "vec": self.vec[:n],
                "seq": self.seq[:n],
                "kind": self.kind[:n],
                "start": self.start[:n],
                "end": self.end[:n],
                "alive": self.alive[:n],
                **{f"code_{c}": a[:n] for c, a in self.codes.items()},
            }
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as allow_pickle
            if self.ann is not None:
                ann_tmp = ann_path.with_suffix(".tmp.usearch")
                self.ann.save(ann_tmp)
                os.replace(ann_tmp, ann_path)
            elif ann_path.exists():
                ann_path.unlink()
            os.replace(tmp, arrays_path)  # last: the arrays name the graph they go with (ann_n)
        except OSError as exc:  # a read-only directory, a full disk: the cache still works
            log.warning("search: could not save the vector cache next to the database: %s", exc)

    def _load(self, conn: Connection) -> None:
        arrays_path, ann_path = self._files()
        if not arrays_path.exists():
            return
        try:
            with np.load(arrays_path) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta["signature"] != self.signature:
                    return
                owner = conn.execute(
                    text("SELECT seq FROM search_docs WHERE vseq = :v"), {"v": meta["vseq"]}
                ).scalar()
                if owner is None or int(owner) != int(meta["last_seq"]):
                    return  # another store's, or from before a reindex
                vec = np.array(z["vec"], dtype=np.float32)
                arrays = {k: np.array(z[k]) for k in ("seq", "kind", "start", "end")}
                arrays["alive"] = np.array(z["alive"]) if "alive" in z else np.ones(len(vec), dtype=bool)
                codes = {c: np.array(z[f"code_{c}"], dtype=np.int32) for c in FILTER_COLUMNS}
        except (OSError, ValueError, KeyError) as exc:
            log.warning("search: the saved vector cache %s is unusable (%s); rebuilding", arrays_path, exc)
            return
        ann = make_ann(self.dim, ann_path) if meta["ann_n"] and ann_path.exists() else None
        if meta["ann_n"] and (ann is None or ann.size != meta.get("ann_size", meta["ann_n"])):
            ann = None  # the graph is rebuilt from the matrix at the next refresh
        self.n = n = len(vec)
        self.vec, self.codes = vec, codes
        self.seq, self.kind = arrays["seq"].astype(np.int64), arrays["kind"].astype(np.int8)
        self.start, self.end = arrays["start"].astype(np.float64), arrays["end"].astype(np.float64)
        self.vocab = {c: dict(v) for c, v in meta["vocab"].items()}
        self.alive = arrays["alive"].astype(bool)
        self.dead = int(n - np.count_nonzero(self.alive))
        self.low = float(self.end[self.alive].min()) if n > self.dead else np.inf
        self.pos = {int(s): i for i, s in enumerate(self.seq) if self.alive[i]}
        self.vseq, self.last_seq = int(meta["vseq"]), int(meta["last_seq"])
        self.ann, self.ann_n = (ann, meta["ann_n"]) if ann is not None else (None, 0)
        log.info("search: %d vectors read from %s", self.n, arrays_path)


def _best(seqs: np.ndarray[Any, Any], sims: np.ndarray[Any, Any], k: int) -> dict[int, float]:
    if len(sims) > k:
        part = np.argpartition(-sims, k)[:k]
        sims, seqs = sims[part], seqs[part]
    return {int(s): float(v) for s, v in zip(seqs, sims, strict=True)}
