"""Schema migrations (Alembic), run in-process at start-up by the sink and the API.

Both may start at the same moment (and in tests, in the same process), so an upgrade holds
a lock: a thread lock (Alembic's `context` is process-global) plus a database-wide lock, a
file lock next to a SQLite database or a PostgreSQL advisory lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
PG_LOCK_ID = 0x5167_4C69  # any constant shared by every Sightline process
_THREAD_LOCK = threading.Lock()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


@contextlib.contextmanager
def _database_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "sqlite":
        db = engine.url.database
        if not db or db == ":memory:":
            yield
            return
        with open(f"{db}.migrate.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_ID})
                conn.commit()
    else:
        yield


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (a no-op when it is there already)."""
    quiet = logging.getLogger("alembic")
    if quiet.level == logging.NOTSET:  # alembic narrates every plugin at INFO; keep start-up logs readable
        quiet.setLevel(logging.WARNING)
    with _THREAD_LOCK, _database_lock(engine):
        command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with _THREAD_LOCK, _database_lock(engine):
        command.downgrade(alembic_config(engine), revision)
