"""Schema migrations (Alembic), run in-process at start-up by the sink and the API."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`. The sink and the API may race at boot: the loser retries once."""
    cfg = alembic_config(engine)
    quiet = logging.getLogger("alembic")
    if quiet.level == logging.NOTSET:  # alembic narrates every plugin at INFO; keep start-up logs readable
        quiet.setLevel(logging.WARNING)
    try:
        command.upgrade(cfg, revision)
    except DBAPIError:
        log.info("schema migration raced with another process; checking again")
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)
