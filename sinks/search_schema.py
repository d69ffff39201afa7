"""What the search index was built with, and the pgvector column whose size that decides.

`search_meta` records the embedder (backend, model, dimension) that made the stored vectors.
An index opened with another embedder refuses to write or compare vectors (never mixed):
words still work, and `sightline search reindex` rebuilds the vectors with the new one.

On PostgreSQL with pgvector, vectors live in `search_docs.embedding vector(dim)` with an HNSW
index (cosine). pgvector needs the dimension in the column type, and the dimension is the
embedder's, so the column is made here at run time, not in an Alembic migration. Without
pgvector (or on SQLite) vectors are float32 blobs scored with numpy (`sinks.search_rank`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, delete, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from sinks import tables as t
from sinks.db import insert_for
from sinks.embedders import Embedder

log = logging.getLogger(__name__)
VectorStore = Literal["pgvector", "blob"]
LOCK_ID = 0x5167_4C6A  # serialises the run-time DDL between a sink and an API starting together


@dataclass(frozen=True)
class IndexSignature:
    embedder: str
    model: str
    dim: int

    @classmethod
    def of(cls, e: Embedder) -> IndexSignature:
        return cls(e.name, e.model, e.dim)

    def describe(self) -> str:
        return f"{self.embedder}:{self.model} ({self.dim} dims)"


def read_signature(conn: Connection) -> IndexSignature | None:
    rows = {r.key: r.value for r in conn.execute(select(t.search_meta.c.key, t.search_meta.c.value))}
    if not {"embedder", "model", "dim"} <= rows.keys():
        return None
    return IndexSignature(rows["embedder"], rows["model"], int(rows["dim"]))


def write_signature(engine: Engine, conn: Connection, sig: IndexSignature) -> None:
    conn.execute(delete(t.search_meta).where(t.search_meta.c.key.in_(["embedder", "model", "dim"])))
    ins = insert_for(engine, t.search_meta)
    conn.execute(ins, [{"key": k, "value": str(v)} for k, v in sig.__dict__.items()])


def pgvector_available(engine: Engine) -> bool:
    """Create the extension if the server has it; True when the `vector` type resolves here."""
    if engine.dialect.name != "postgresql":
        return False
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT to_regtype('vector')")).scalar() is not None:
                return True
            have = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
            if have is None:
                return False
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            return conn.execute(text("SELECT to_regtype('vector')")).scalar() is not None
    except DBAPIError as exc:  # no privilege to create it, most likely
        log.warning("pgvector is not usable here (%s); vectors are scored in Python", exc.orig)
        return False


def embedding_dim(conn: Connection) -> int | None:
    """The dimension of search_docs.embedding, or None when the column is not there."""
    mod = conn.execute(
        text(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass('search_docs') "
            "AND attname = 'embedding' AND NOT attisdropped"
        )
    ).scalar()
    return int(mod) if mod is not None else None


def ensure_embedding_column(engine: Engine, dim: int, *, replace: bool = False) -> None:
    """Add `embedding vector(dim)` + HNSW; with `replace`, a column of another size is rebuilt empty."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
        have = embedding_dim(conn)
        if have == dim:
            return
        if have is not None:
            if not replace:
                return  # another embedder built it: the signature check keeps us from touching it
            conn.execute(text("ALTER TABLE search_docs DROP COLUMN embedding"))
        conn.execute(text(f"ALTER TABLE search_docs ADD COLUMN embedding vector({int(dim)})"))
        conn.execute(
            text(
                "CREATE INDEX IF NOT EXISTS ix_search_docs_embedding ON search_docs "
                "USING hnsw (embedding vector_cosine_ops)"
            )
        )


def vector_store(engine: Engine) -> VectorStore:
    return "pgvector" if pgvector_available(engine) else "blob"
