"""The search index's writer: tracks and summaries become `search_docs` rows (words + a vector).

The sink indexes what each batch stored (`index_messages`, after the batch's commit, so a slow
embedder never holds the store's write lock); `backfill` indexes whatever has no row yet (an
existing store, or a crash between a batch and its indexing) and runs at sink start-up;
`reindex` rebuilds every vector with the configured embedder. All three are idempotent: a
row's vector is recomputed only when its text changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, func, select, text, tuple_, update
from sqlalchemy.engine import Engine

from bus.contracts import CameraSpec, ObjectEvent, Summary
from configs.search import SearchConfig
from sinks import tables as t
from sinks.db import epoch, executemany, insert_for
from sinks.embedders import Embedder, EmbedderError, Vectors
from sinks.eventwrite import track_key
from sinks.search_rank import Hit, Leg, SearchFilter, search
from sinks.search_schema import (
    LOCK_ID,
    IndexSignature,
    ensure_embedding_column,
    read_signature,
    vector_store,
    write_signature,
)

log = logging.getLogger(__name__)
CHUNK = 500
Progress = Callable[[int], None]


class IndexMismatch(RuntimeError):
    """The stored vectors were made by another embedder."""


@dataclass(frozen=True)
class Note:
    """What a track's events say that the tracks table does not keep."""

    query_text: str = ""
    description: str | None = None


@dataclass
class Doc:
    row: dict[str, Any]
    embed: bool  # its text is new or changed
    vector: Any = field(default=None)
    bump: bool = False  # same vector, other times: readers that filter by time must read it again


def compose_text(label: str, query_text: str, description: str | None, camera_name: str) -> str:
    """The indexed text: what it is (the description when there is one), what was asked, where."""
    what = f"{description} ({label}, {query_text})" if description else f"{label} ({query_text})"
    return f"{what} at {camera_name}"


class SearchIndex:
    """Writes and (through `sinks.search_rank`) reads one store's index; safe to share between threads."""

    def __init__(self, engine: Engine, embedder: Embedder, cfg: SearchConfig) -> None:
        self.engine = engine
        self.embedder = embedder
        self.cfg = cfg
        self.vectors = vector_store(engine)
        self.signature = IndexSignature.of(embedder)
        with engine.begin() as conn:
            stored = read_signature(conn)
            if stored is None:
                write_signature(engine, conn, self.signature)
                stored = self.signature
        self.stored_signature = stored
        if not self.vectors_ok:
            log.warning(
                "search index vectors were made by %s, not %s: meaning search is off until "
                "`sightline search reindex`",
                stored.describe(),
                self.signature.describe(),
            )
        elif self.vectors == "pgvector":
            ensure_embedding_column(engine, self.signature.dim)

    @property
    def vectors_ok(self) -> bool:
        return self.stored_signature == self.signature

    def search(
        self,
        q: str,
        flt: SearchFilter | None = None,
        limit: int = 20,
        legs: tuple[Leg, ...] = ("words", "meaning"),
    ) -> list[Hit]:
        """Best first; see `sinks.search_rank`."""
        return search(self, q, flt or SearchFilter(), limit, legs)

    # -- writing ------------------------------------------------------------------------------

    def index_messages(self, messages: Iterable[object]) -> int:
        """Index the tracks touched by these events and these summaries; returns rows written."""
        notes: dict[str, Note] = {}
        summaries: list[Summary] = []
        for m in messages:
            if isinstance(m, ObjectEvent):
                key = track_key(m.camera_id, m.query_id, m.track_id)
                old = notes.get(key, Note())
                notes[key] = Note(m.query_text, m.description or old.description)
            elif isinstance(m, Summary):
                summaries.append(m)
        with self.engine.connect() as conn:
            docs = self._track_docs(conn, notes) + self._summary_docs(conn, summaries)
        return self._write(docs)

    def backfill(self, progress: Progress | None = None) -> int:
        """Index every track and summary that has no row yet."""
        done = 0
        d = t.search_docs.c
        while True:
            with self.engine.connect() as conn:
                indexed = select(d.seq).where(d.doc_id == t.tracks.c.id).exists()
                missing = select(t.tracks.c.id).where(~indexed)
                keys = list(conn.execute(missing.limit(CHUNK)).scalars())
                docs = self._track_docs(conn, self._notes_from_events(conn, keys)) if keys else []
                if not keys:
                    s = t.summaries.c
                    rows = conn.execute(
                        select(s.payload)
                        .where(~select(d.seq).where(d.doc_id == s.summary_id).exists())
                        .limit(CHUNK)
                    ).scalars()
                    docs = self._summary_docs(conn, [Summary.model_validate_json(p) for p in rows])
            if not docs:
                return done + self._fill_vectors(progress)
            done += self._write(docs)
            if progress:
                progress(len(docs))

    def _fill_vectors(self, progress: Progress | None) -> int:
        """Rows that have no vector yet (embedder down when they were written, or a reindex)."""
        if not self.vectors_ok:
            return 0
        d = t.search_docs.c
        last, done = 0, 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(d.seq, d.doc_id, d.text)
                    .where(d.seq > last, d.vseq.is_(None))
                    .order_by(d.seq)
                    .limit(CHUNK)
                ).all()
            if not rows:
                return done
            last = int(rows[-1].seq)
            docs = [Doc({"doc_id": r.doc_id, "text": r.text}, embed=True) for r in rows]
            self._store_vectors(docs)
            stored = sum(doc.vector is not None for doc in docs)
            done += stored
            if progress:
                progress(len(docs))
            if stored < len(docs):
                return done  # the embedder is failing: try again at the next start-up

    def reindex(self, progress: Progress | None = None) -> int:
        """Make every vector again with this embedder (and record it); then backfill what is missing."""
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
            conn.execute(update(t.search_docs).values(vec=None, vseq=None))
            write_signature(self.engine, conn, self.signature)
        if self.vectors == "pgvector":
            ensure_embedding_column(self.engine, self.signature.dim, replace=True)
            with self.engine.begin() as conn:
                conn.execute(text("UPDATE search_docs SET embedding = NULL WHERE embedding IS NOT NULL"))
        self.stored_signature = self.signature
        return self.backfill(progress)

    # -- building rows ------------------------------------------------------------------------

    def _camera_names(self, conn: Connection, ids: set[str]) -> dict[str, str]:
        names = {i: i for i in ids}
        if ids:
            for r in conn.execute(select(t.cameras.c.id, t.cameras.c.spec).where(t.cameras.c.id.in_(ids))):
                names[r.id] = CameraSpec.model_validate_json(r.spec).name or r.id
        return names

    def _existing(self, conn: Connection, ids: Sequence[str]) -> dict[str, Any]:
        d = t.search_docs.c
        q = select(d.doc_id, d.text, d.query_text, d.description, d.vseq, d.start_ts, d.end_ts).where(
            d.doc_id.in_(ids)
        )
        return {r.doc_id: r for r in conn.execute(q)} if ids else {}

    def _notes_from_events(self, conn: Connection, keys: list[str]) -> dict[str, Note]:
        c = t.events.c
        tc = t.tracks.c
        tracks = conn.execute(select(tc.camera_id, tc.query_id, tc.track_id).where(tc.id.in_(keys))).all()
        notes: dict[str, Note] = {}
        wanted = [tuple(r) for r in tracks]
        q = select(c.payload).where(tuple_(c.camera_id, c.query_id, c.track_id).in_(wanted)).order_by(c.ts)
        for payload in conn.execute(q).scalars() if wanted else ():
            ev = ObjectEvent.model_validate_json(payload)
            key = track_key(ev.camera_id, ev.query_id, ev.track_id)
            old = notes.get(key, Note())
            notes[key] = Note(ev.query_text, ev.description or old.description)
        return notes

    def _track_docs(self, conn: Connection, notes: dict[str, Note]) -> list[Doc]:
        keys = list(notes)
        out: list[Doc] = []
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i : i + CHUNK]
            rows = conn.execute(select(t.tracks).where(t.tracks.c.id.in_(chunk))).all()
            old = self._existing(conn, chunk)
            names = self._camera_names(conn, {r.camera_id for r in rows})
            for r in rows:
                note, prev = notes[r.id], old.get(r.id)
                query_text = note.query_text or (prev.query_text if prev else "")
                description = note.description or (prev.description if prev else None)
                name = names[r.camera_id]
                row = {
                    "doc_id": r.id,
                    "kind": "track",
                    "camera_id": r.camera_id,
                    "query_id": r.query_id,
                    "label": r.label,
                    "camera_name": name,
                    "query_text": query_text,
                    "description": description,
                    "start_ts": r.first_ts,
                    "end_ts": r.last_ts,
                    "snapshot": r.best_snapshot or r.start_snapshot,
                    "text": compose_text(r.label, query_text, description, name),
                }
                out.append(_doc(row, prev))
        return out

    def _summary_docs(self, conn: Connection, summaries: Sequence[Summary]) -> list[Doc]:
        if not summaries:
            return []
        old = self._existing(conn, [s.summary_id for s in summaries])
        names = self._camera_names(conn, {s.camera_id for s in summaries})
        out = []
        for s in summaries:
            segments = " ".join(seg.description for seg in s.segments)
            row = {
                "doc_id": s.summary_id,
                "kind": "summary",
                "camera_id": s.camera_id,
                "query_id": s.query_id,
                "label": "summary",
                "camera_name": names[s.camera_id],
                "query_text": s.query_text,
                "description": None,
                "start_ts": epoch(s.window_start_wall),
                "end_ts": epoch(s.window_end_wall),
                "snapshot": None,
                "text": f"{s.text} {segments}".strip() + f" at {names[s.camera_id]}",
            }
            out.append(_doc(row, old.get(s.summary_id)))
        return out

    # -- storing ------------------------------------------------------------------------------

    def _embed(self, docs: list[Doc]) -> None:
        todo = [d for d in docs if d.embed and d.vector is None]
        if not todo or not self.vectors_ok:
            return
        try:
            vectors: Vectors = self.embedder.embed([d.row["text"] for d in todo])
        except EmbedderError as exc:  # words still index; the rows keep vseq NULL for the next backfill
            log.warning("search: embedding %d texts failed, indexed for words only: %s", len(todo), exc)
            return
        for d, v in zip(todo, vectors, strict=True):
            d.vector = v

    def _write(self, docs: list[Doc]) -> int:
        if not docs:
            return 0
        self._embed(docs)
        ins = insert_for(self.engine, t.search_docs)
        cols = [k for k in docs[0].row if k != "doc_id"]
        upsert = ins.on_conflict_do_update(index_elements=["doc_id"], set_={k: ins.excluded[k] for k in cols})
        with self.engine.begin() as conn:  # rows and their vectors in one transaction (one commit)
            executemany(conn, upsert, [d.row for d in docs])
            self._vectors_in(conn, [d for d in docs if d.vector is not None])
            self._bump(conn, [d for d in docs if d.bump and d.vector is None])
        return len(docs)

    def _store_vectors(self, docs: list[Doc]) -> None:
        """Vectors for these docs (embedding those that have none yet); bumps `vseq` so readers refresh."""
        self._embed(docs)
        with self.engine.begin() as conn:
            self._vectors_in(conn, [d for d in docs if d.vector is not None])

    def _vectors_in(self, conn: Connection, docs: list[Doc]) -> None:
        if not docs or not self.vectors_ok:
            return
        d = t.search_docs.c
        # The next version is taken inside each row's UPDATE, so it is computed under the write lock
        # (SQLite) or the advisory lock (PostgreSQL): readers that saw vseq N never miss a later row.
        # ORDER BY ... LIMIT 1 walks the vseq index; coalesce(max(vseq)) would scan the table per row.
        top = select(d.vseq).where(d.vseq.is_not(None)).order_by(d.vseq.desc()).limit(1).scalar_subquery()
        next_seq = func.coalesce(top, 0) + 1
        if self.engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
        if self.vectors == "pgvector":
            conn.execute(
                text(
                    "UPDATE search_docs SET embedding = CAST(:v AS vector), "
                    "vseq = coalesce((SELECT vseq FROM search_docs WHERE vseq IS NOT NULL "
                    "ORDER BY vseq DESC LIMIT 1), 0) + 1 WHERE doc_id = :id"
                ),
                [{"v": _pg_vector(doc.vector), "id": doc.row["doc_id"]} for doc in docs],
            )
            return
        stmt = (
            update(t.search_docs)
            .where(d.doc_id == bindparam("b_id"))
            .values(vec=bindparam("b_vec"), vseq=next_seq)
        )
        executemany(conn, stmt, [{"b_id": doc.row["doc_id"], "b_vec": _blob(doc.vector)} for doc in docs])

    def _bump(self, conn: Connection, docs: list[Doc]) -> None:
        """A new `vseq` for rows whose times moved (a track that ended): the SQLite reader's
        in-memory copy filters by time and reads these rows again. pgvector filters in SQL."""
        if not docs or not self.vectors_ok or self.vectors == "pgvector":
            return
        d = t.search_docs.c
        top = select(d.vseq).where(d.vseq.is_not(None)).order_by(d.vseq.desc()).limit(1).scalar_subquery()
        stmt = (
            update(t.search_docs)
            .where(d.doc_id == bindparam("b_id"), d.vseq.is_not(None))
            .values(vseq=func.coalesce(top, 0) + 1)
        )
        conn.execute(stmt, [{"b_id": doc.row["doc_id"]} for doc in docs])


def _doc(row: dict[str, Any], prev: Any) -> Doc:
    """The row to write; its vector is made again only when its text is new or changed."""
    embed = prev is None or prev.text != row["text"] or prev.vseq is None
    moved = prev is not None and (prev.start_ts != row["start_ts"] or prev.end_ts != row["end_ts"])
    return Doc(row, embed=embed, bump=not embed and moved)


def _blob(v: Any) -> bytes:
    return np.asarray(v, dtype="<f4").tobytes()


def _pg_vector(v: Any) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32)) + "]"


def open_search(engine: Engine, cfg: SearchConfig) -> SearchIndex | None:
    """The configured index, or None (search off, or the embedder cannot start: logged, not fatal)."""
    if not cfg.enabled:
        return None
    from sinks.embedders import load_embedder

    try:
        return SearchIndex(engine, load_embedder(cfg.embedder), cfg)
    except EmbedderError as exc:
        log.error("search is off: the %s embedder did not start: %s", cfg.embedder.type, exc)
        return None
