"""Search over history: search_docs (words + vectors) and search_meta (which embedder built it).

Words: an FTS5 table kept by triggers on SQLite; a generated tsvector column with a GIN index
on PostgreSQL. Vectors: the `vec` blob everywhere; the pgvector column (its dimension is the
embedder's) is added at run time by `sinks.search_schema`. Existing tracks and summaries are
backfilled by the sink at start-up (the embedder lives in the config, not in a migration).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SQLITE_FTS = [
    # porter: "wearing" finds "wear"; unicode61 folds case and diacritics.
    "CREATE VIRTUAL TABLE search_fts USING fts5(text, content='search_docs', content_rowid='seq', "
    "tokenize='porter unicode61')",
    "CREATE TRIGGER search_docs_ai AFTER INSERT ON search_docs BEGIN "
    "INSERT INTO search_fts(rowid, text) VALUES (new.seq, new.text); END",
    "CREATE TRIGGER search_docs_ad AFTER DELETE ON search_docs BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, text) VALUES ('delete', old.seq, old.text); END",
    "CREATE TRIGGER search_docs_au AFTER UPDATE OF text ON search_docs BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, text) VALUES ('delete', old.seq, old.text); "
    "INSERT INTO search_fts(rowid, text) VALUES (new.seq, new.text); END",
]


def upgrade() -> None:
    op.create_table(
        "search_docs",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("doc_id", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("camera_name", sa.String(200), nullable=False),
        sa.Column("query_text", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("start_ts", sa.Float, nullable=False),
        sa.Column("end_ts", sa.Float, nullable=False),
        sa.Column("snapshot", sa.String(512)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("vec", sa.LargeBinary),
        sa.Column("vseq", sa.BigInteger),
    )
    op.create_index("ix_search_docs_filter", "search_docs", ["kind", "camera_id", "start_ts"])
    op.create_index("ix_search_docs_end", "search_docs", ["end_ts"])
    op.create_index("ix_search_docs_vseq", "search_docs", ["vseq"])
    op.create_table(
        "search_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for sql in SQLITE_FTS:
            op.execute(sql)
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE search_docs ADD COLUMN tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_search_docs_tsv ON search_docs USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("search_docs_ai", "search_docs_ad", "search_docs_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_meta")
    op.drop_table("search_docs")
