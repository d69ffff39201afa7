"""Alembic environment: the engine comes from `sinks.migrate`, never from an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

from sinks.tables import include_object, metadata

engine: Engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, include_object=include_object
    )
    with context.begin_transaction():
        context.run_migrations()
