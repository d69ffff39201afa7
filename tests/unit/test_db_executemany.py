"""`sinks.db.executemany` writes exactly what `conn.execute(stmt, rows)` writes: the sink's fast
path for SQLite must not change a stored value, a statement's own literals, or a one-key statement."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    update,
)

from sinks.db import create_engine, executemany, insert_for

META = MetaData()
ROWS = Table(
    "rows",
    META,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(16), unique=True, nullable=False),
    Column("score", Float),
    Column("blob", LargeBinary),
    Column("version", Integer),
)


def test_the_fast_path_writes_what_sqlalchemy_writes(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "score": i / 3 if i % 2 else None, "blob": bytes([i, 0, 255])} for i in range(50)]
    dumps = []
    for name, run in (("plain", lambda c, s, r: c.execute(s, r)), ("fast", executemany)):
        engine = create_engine(f"sqlite:///{tmp_path}/{name}.db")
        META.create_all(engine)
        with engine.begin() as conn:
            run(conn, insert_for(engine, ROWS).on_conflict_do_nothing(index_elements=["id"]), rows)
            run(conn, insert_for(engine, ROWS).on_conflict_do_nothing(index_elements=["id"]), rows[:5])
            top = select(ROWS.c.version).order_by(ROWS.c.version.desc()).limit(1).scalar_subquery()
            bump = (
                update(ROWS).where(ROWS.c.id == bindparam("b_id")).values(version=func.coalesce(top, 0) + 1)
            )
            run(conn, bump, [{"b_id": f"r{i}"} for i in range(0, 50, 7)])  # literals: LIMIT 1, 0, 1
            run(conn, delete(ROWS).where(ROWS.c.id == bindparam("b_id")), [{"b_id": "r3"}, {"b_id": "r4"}])
        with engine.connect() as conn:
            dumps.append(conn.execute(select(ROWS).order_by(ROWS.c.seq)).all())
        engine.dispose()
    plain, fast = dumps
    assert fast == plain
    assert len(fast) == 48 and sum(r.version is not None for r in fast) == 8
    assert max(r.version or 0 for r in fast) == 8  # each bump saw the one before it
