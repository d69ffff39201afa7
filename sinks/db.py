"""Engine creation and dialect helpers shared by the store modules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy import create_engine as _create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry


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


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
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
