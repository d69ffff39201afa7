"""Camera URLs in the store lose their credentials: the store keeps only the masked URL.

Revision ID: 0002
Revises: 0001

Rows written before this revision hold the real URL (with its password); they are rewritten
with the masked one. There is no way back down: the passwords are gone from the store (the
control topic still has them), so the downgrade leaves the rows as they are.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from bus.redact import redact_url

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

cameras = sa.table("cameras", sa.column("id", sa.String), sa.column("spec", sa.Text))


def upgrade() -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(cameras.c.id, cameras.c.spec)).all():
        spec = json.loads(row.spec)
        url = spec.get("url")
        if isinstance(url, str) and redact_url(url) != url:
            spec["url"] = redact_url(url)
            conn.execute(
                cameras.update()
                .where(cameras.c.id == row.id)
                .values(spec=json.dumps(spec, separators=(",", ":")))
            )


def downgrade() -> None:
    pass  # masking cannot be undone; the rows stay masked
