"""Alerts raised by rules, and the zones, lines and rules themselves.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(64), nullable=False, unique=True),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("track_id", sa.String(128)),
        sa.Column("condition", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("pts_s", sa.Float, nullable=False),
        sa.Column("snapshot", sa.String(512)),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_alerts_ts", "alerts", ["ts", "seq"])
    op.create_index("ix_alerts_camera_ts", "alerts", ["camera_id", "ts"])
    op.create_index("ix_alerts_rule_ts", "alerts", ["rule_id", "ts"])
    op.create_table(
        "rule_objects",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("camera_id", sa.String(64)),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rule_objects")
    op.drop_index("ix_alerts_rule_ts", table_name="alerts")
    op.drop_index("ix_alerts_camera_ts", table_name="alerts")
    op.drop_index("ix_alerts_ts", table_name="alerts")
    op.drop_table("alerts")
