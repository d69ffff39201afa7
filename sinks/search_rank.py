"""Reading the search index: a words leg, a meaning leg, fused by reciprocal rank.

- Words: FTS5 `MATCH` ranked by bm25 (SQLite) or `tsv @@ to_tsquery` ranked by `ts_rank_cd`
  (PostgreSQL). The user's text never reaches either query language: it is cut into word
  tokens (`\\w+`) that are OR-ed, each quoted, so `"`, `*`, `NEAR(`, `:` and `-` are plain text.
- Meaning: cosine similarity of the query's vector with each row's, above `min_similarity`
  (below it a row does not "match by meaning", so nonsense finds nothing). pgvector's HNSW
  index with iterative scans when it is there; otherwise numpy over an in-memory copy of the
  vectors (`VectorCache`), refreshed from `vseq` so only new or changed vectors are read.
- Fusion: score = Σ 1/(rrf_k + rank) over the legs a row appears in (Cormack et al., 2009);
  `matched` says which legs found it. Filters apply inside both legs and again on the rows.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy import Connection, text

from sinks.embedders import EmbedderError

if TYPE_CHECKING:
    from sinks.search import SearchIndex

log = logging.getLogger(__name__)
MAX_TOKENS = 32
KINDS = {"track": 0, "summary": 1}
Matched = Literal["words", "meaning", "both"]


@dataclass(frozen=True)
class SearchFilter:
    camera_id: str | None = None
    query_id: str | None = None
    label: str | None = None
    kind: Literal["track", "summary"] | None = None
    since: float | None = None  # epoch seconds; a hit overlaps [since, until)
    until: float | None = None

    def sql(self) -> tuple[str, dict[str, Any]]:
        """A fixed WHERE fragment over alias `d`, with every value bound (never spliced)."""
        parts: list[str] = ["1 = 1"]
        params: dict[str, Any] = {}
        for col, value in (
            ("camera_id", self.camera_id),
            ("query_id", self.query_id),
            ("label", self.label),
            ("kind", self.kind),
        ):
            if value is not None:
                parts.append(f"d.{col} = :f_{col}")
                params[f"f_{col}"] = value
        if self.since is not None:
            parts.append("d.end_ts >= :f_since")
            params["f_since"] = self.since
        if self.until is not None:
            parts.append("d.start_ts < :f_until")
            params["f_until"] = self.until
        return " AND ".join(parts), params


@dataclass(frozen=True)
class Hit:
    kind: str
    id: str
    camera_id: str
    camera_name: str
    query_id: str
    label: str
    start: float
    end: float
    text: str
    description: str | None
    snapshot: str | None
    score: float
    matched: Matched
    similarity: float | None


def tokens(q: str) -> list[str]:
    return re.findall(r"\w+", q.lower())[:MAX_TOKENS]


def search(index: SearchIndex, q: str, flt: SearchFilter, limit: int = 20) -> list[Hit]:
    words = tokens(q)
    if not words and not q.strip():
        return []
    k, cfg = index.cfg.candidates, index.cfg
    where, params = flt.sql()
    with index.engine.connect() as conn:
        word_hits = _words(conn, words, where, params, k) if words else []
        meaning: dict[int, float] = {}
        qv = _query_vector(index, q) if index.vectors_ok else None
        if qv is not None and np.any(qv):
            if index.vectors == "pgvector":
                meaning = _pg_meaning(conn, qv, where, params, k)
            else:
                meaning = index_cache(index).top(conn, qv, flt, k * 4)
            meaning = {s: v for s, v in meaning.items() if v >= cfg.min_similarity}
        fused: dict[int, float] = {}
        for rank, seq in enumerate(word_hits):
            fused[seq] = fused.get(seq, 0.0) + 1.0 / (cfg.rrf_k + rank + 1)
        for rank, seq in enumerate(sorted(meaning, key=lambda s: -meaning[s])):
            fused[seq] = fused.get(seq, 0.0) + 1.0 / (cfg.rrf_k + rank + 1)
        rows = _rows(conn, list(fused), where, params)
    in_words = set(word_hits)
    hits = []
    for seq, r in rows.items():
        both = seq in in_words and seq in meaning
        matched: Matched = "both" if both else "words" if seq in in_words else "meaning"
        hits.append(
            Hit(
                kind=r.kind,
                id=r.doc_id,
                camera_id=r.camera_id,
                camera_name=r.camera_name,
                query_id=r.query_id,
                label=r.label,
                start=float(r.start_ts),
                end=float(r.end_ts),
                text=r.text,
                description=r.description,
                snapshot=r.snapshot,
                score=round(fused[seq], 6),
                matched=matched,
                similarity=round(float(meaning[seq]), 4) if seq in meaning else None,
            )
        )
    hits.sort(key=lambda h: (-h.score, -h.end, h.id))
    return hits[:limit]


def _query_vector(index: SearchIndex, q: str) -> np.ndarray[Any, Any] | None:
    try:
        vec: np.ndarray[Any, Any] = index.embedder.embed([q])[0]
        return vec
    except EmbedderError as exc:  # the words leg still answers
        log.warning("search: the query could not be embedded, words only: %s", exc)
        return None


def _words(conn: Connection, words: list[str], where: str, params: dict[str, Any], k: int) -> list[int]:
    if conn.dialect.name == "sqlite":
        match = " OR ".join(f'"{w}"' for w in words)  # \w+ tokens hold no quote: each is one FTS string
        sql = (
            "SELECT d.seq FROM search_fts JOIN search_docs d ON d.seq = search_fts.rowid "
            f"WHERE search_fts MATCH :m AND {where} ORDER BY bm25(search_fts) LIMIT :k"
        )
    else:
        match = " | ".join(words)  # \w+ tokens: no tsquery operator can appear
        sql = (
            "SELECT d.seq FROM search_docs d, to_tsquery('english', :m) query "
            f"WHERE d.tsv @@ query AND {where} ORDER BY ts_rank_cd(d.tsv, query) DESC, d.seq DESC LIMIT :k"
        )
    return [int(s) for s in conn.execute(text(sql), {**params, "m": match, "k": k}).scalars()]


def _pg_meaning(
    conn: Connection, qv: np.ndarray[Any, Any], where: str, params: dict[str, Any], k: int
) -> dict[int, float]:
    vec = "[" + ",".join(f"{x:.7g}" for x in qv) + "]"
    # SET LOCAL lasts for the read's transaction (the connection autobegins one and rolls it back).
    # Iterative scans keep going past filtered-out neighbours instead of returning too few rows.
    conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    conn.execute(text(f"SET LOCAL hnsw.ef_search = {min(1000, max(40, k))}"))
    rows = conn.execute(
        text(
            "SELECT d.seq, 1 - (d.embedding <=> CAST(:v AS vector)) AS sim FROM search_docs d "
            f"WHERE d.embedding IS NOT NULL AND {where} "
            "ORDER BY d.embedding <=> CAST(:v AS vector) LIMIT :k"
        ),
        {**params, "v": vec, "k": k},
    ).all()
    return {int(r.seq): float(r.sim) for r in rows}


def _rows(conn: Connection, seqs: list[int], where: str, params: dict[str, Any]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for i in range(0, len(seqs), 500):
        chunk = seqs[i : i + 500]
        marks = ", ".join(f":s{j}" for j in range(len(chunk)))
        sql = (
            "SELECT d.seq, d.doc_id, d.kind, d.camera_id, d.camera_name, d.query_id, d.label, d.start_ts, "
            "d.end_ts, d.text, d.description, d.snapshot FROM search_docs d "
            f"WHERE d.seq IN ({marks}) AND {where}"
        )
        bound = {**params, **{f"s{j}": s for j, s in enumerate(chunk)}}
        out.update({int(r.seq): r for r in conn.execute(text(sql), bound)})
    return out


_CACHES: dict[int, VectorCache] = {}
_CACHES_LOCK = threading.Lock()


def index_cache(index: SearchIndex) -> VectorCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(id(index))
        if cache is None or cache.dim != index.signature.dim:
            cache = _CACHES[id(index)] = VectorCache(index.signature.dim)
        return cache


class VectorCache:
    """Every stored vector in one float32 matrix, with the columns the filters need.

    Refreshed before each query from rows whose `vseq` is newer than the last one read. Times
    here may lag (a track's end moves without a new vector), so only the fields that never
    change (kind, camera, query, label) and the start (which only moves earlier) filter here;
    the rows step re-applies every filter in SQL.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        dim = self.dim
        self.n = 0
        self.vseq = 0
        self.vec = np.zeros((0, dim), dtype=np.float32)
        self.seq = np.zeros(0, dtype=np.int64)
        self.kind = np.zeros(0, dtype=np.int8)
        self.start = np.zeros(0, dtype=np.float64)
        self.codes: dict[str, np.ndarray[Any, Any]] = {
            c: np.zeros(0, dtype=np.int32) for c in ("camera_id", "query_id", "label")
        }
        self.vocab: dict[str, dict[str, int]] = {c: {} for c in self.codes}
        self.pos: dict[int, int] = {}
        self.checked = time.monotonic()

    def _grow(self, need: int) -> None:
        cap = len(self.seq)
        if need <= cap:
            return
        new = max(need, cap * 2, 1024)
        self.vec = np.resize(self.vec, (new, self.dim))
        self.seq = np.resize(self.seq, new)
        self.kind = np.resize(self.kind, new)
        self.start = np.resize(self.start, new)
        self.codes = {c: np.resize(a, new) for c, a in self.codes.items()}

    def refresh(self, conn: Connection) -> None:
        top = conn.execute(text("SELECT max(vseq) FROM search_docs")).scalar()
        if int(top or 0) < self.vseq:  # a reindex started the versions again
            self._reset()
        if time.monotonic() - self.checked > 60:  # rows deleted by retention: start over now and then
            self.checked = time.monotonic()
            live = conn.execute(text("SELECT count(*) FROM search_docs WHERE vseq IS NOT NULL")).scalar()
            if self.n > 1.2 * int(live or 0) + 100:
                self._reset()
        while True:
            rows = conn.execute(
                text(
                    "SELECT seq, vseq, kind, camera_id, query_id, label, start_ts, vec FROM search_docs "
                    "WHERE vseq > :v AND vec IS NOT NULL ORDER BY vseq LIMIT 50000"
                ),
                {"v": self.vseq},
            ).all()
            if not rows:
                return
            self._grow(self.n + len(rows))
            for r in rows:
                i = self.pos.get(int(r.seq))
                if i is None:
                    i = self.pos[int(r.seq)] = self.n
                    self.n += 1
                self.vec[i] = np.frombuffer(r.vec, dtype="<f4")
                self.seq[i], self.kind[i], self.start[i] = r.seq, KINDS.get(r.kind, 9), r.start_ts
                for c in self.codes:
                    vocab = self.vocab[c]
                    self.codes[c][i] = vocab.setdefault(getattr(r, c), len(vocab))
            self.vseq = int(rows[-1].vseq)

    def top(self, conn: Connection, qv: np.ndarray[Any, Any], flt: SearchFilter, k: int) -> dict[int, float]:
        with self._lock:
            self.refresh(conn)
            n = self.n
            mask = np.ones(n, dtype=bool)
            for c, value in (("camera_id", flt.camera_id), ("query_id", flt.query_id), ("label", flt.label)):
                if value is not None:
                    mask &= self.codes[c][:n] == self.vocab[c].get(value, -1)
            if flt.kind is not None:
                mask &= self.kind[:n] == KINDS[flt.kind]
            if flt.until is not None:
                mask &= self.start[:n] < flt.until
            idx = np.flatnonzero(mask) if not mask.all() else None
            vecs = self.vec[:n] if idx is None else self.vec[idx]
            sims = vecs @ qv.astype(np.float32)
            seqs = self.seq[:n] if idx is None else self.seq[idx]
        if len(sims) > k:
            part = np.argpartition(-sims, k)[:k]
            sims, seqs = sims[part], seqs[part]
        return {int(s): float(v) for s, v in zip(seqs, sims, strict=True)}
