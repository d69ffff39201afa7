"""Engine creation and dialect helpers shared by the store modules."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, event
from sqlalchemy import create_engine as _create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.expression import UpdateBase


def create_engine(url: str) -> Engine:
    """An engine tuned per dialect: SQLite in WAL mode so the sink writes while the API reads."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = _create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; a bare postgresql:// would ask for psycopg2.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return _create_engine(url, pool_pre_ping=True)


def executemany(conn: Connection, stmt: UpdateBase, rows: Sequence[Mapping[str, Any]]) -> None:
    """`conn.execute(stmt, rows)`, with the statement compiled once and the rows handed to sqlite3
    as tuples. SQLAlchemy processes each row's parameters in Python, which for a sink batch of
    thousands of plain values (no type conversions: text, numbers, bytes) was a fifth of its
    write time. PostgreSQL keeps SQLAlchemy's path, which batches rows into multi-row VALUES."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(stmt, list(rows))
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    order = compiled.positiontup or []
    # the statement's own literals (a LIMIT 1, a coalesce's 0)
    fixed = {k: compiled.binds[k].effective_value for k in order if k not in rows[0]}
    get = itemgetter(*order)
    one = len(order) == 1  # itemgetter of one key returns the value, not a tuple
    conn.exec_driver_sql(
        str(compiled),
        [(get(r),) if one else get(r) for r in ([{**fixed, **r} for r in rows] if fixed else rows)],
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Checkpoint every ~40 MB of WAL, not every 4 MB: a sink batch dirties thousands of pages (the
    # ids are random, so every insert lands on another index page), and fewer checkpoints write a
    # hot page once instead of again and again.
    cur.execute("PRAGMA wal_autocheckpoint=10000")
    # A big store's random-id indexes are read page by page on every insert: read them through a
    # memory map (no system call per page) and keep up to 64 MB of pages per connection (SQLite
    # grows the cache only as pages are used). +8 % tracks/s at 300k tracks in `bench search`.
    cur.execute("PRAGMA mmap_size=4294967296")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def insert_for(engine: Engine, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT that knows ON CONFLICT for the engine's dialect (both SQLite and PostgreSQL have it)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")


def epoch(ts: datetime) -> float:
    """Epoch seconds; a naive datetime is taken as UTC (never as the server's local time)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)
