"""Alembic migrations: the schema they build is the one the code declares, and they go down and up."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from test_store_events import store  # noqa: F401  (the SQLite/PostgreSQL fixture)

from sinks.migrate import downgrade, upgrade
from sinks.store import Store
from sinks.tables import include_object, metadata

TABLES = {
    "cameras",
    "queries",
    "events",
    "tracks",
    "summaries",
    "status",
    "segments",
    "search_docs",
    "search_meta",
    "alerts",
    "rule_objects",
}


def test_migrated_schema_matches_the_tables_module(store: Store) -> None:  # noqa: F811
    with store.engine.connect() as conn:
        # include_object: the FTS5 table, `tsv` and `embedding` are made by SQL (see sinks.tables)
        ctx = MigrationContext.configure(conn, opts={"include_object": include_object})
        diffs = compare_metadata(ctx, metadata)
        names = set(inspect(conn).get_table_names())
        event_indexes = {ix["name"] for ix in inspect(conn).get_indexes("events")}
    assert diffs == []
    assert names >= TABLES | {"alembic_version"}
    assert {"ix_events_ts", "ix_events_camera_ts", "ix_events_query_ts", "ix_events_track"} <= event_indexes


def test_down_and_up_again(store: Store) -> None:  # noqa: F811
    downgrade(store.engine, "base")
    assert not TABLES & set(inspect(store.engine).get_table_names())
    upgrade(store.engine)
    upgrade(store.engine)  # already at head: a no-op
    assert set(inspect(store.engine).get_table_names()) >= TABLES


def test_concurrent_start_ups_do_not_race(store: Store) -> None:  # noqa: F811
    downgrade(store.engine, "base")
    errors: list[BaseException] = []

    def boot() -> None:
        try:
            Store(store.url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=boot) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert set(inspect(store.engine).get_table_names()) >= TABLES
