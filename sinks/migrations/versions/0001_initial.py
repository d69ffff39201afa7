"""Initial schema: cameras, queries, events, tracks, summaries, status.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cameras",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "queries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("track_id", sa.String(128), nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("pts_s", sa.Float, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("snapshot", sa.String(512)),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_events_ts", "events", ["ts", "seq"])
    op.create_index("ix_events_camera_ts", "events", ["camera_id", "ts"])
    op.create_index("ix_events_query_ts", "events", ["query_id", "ts"])
    op.create_index("ix_events_track", "events", ["camera_id", "query_id", "track_id"])
    op.create_table(
        "tracks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("track_id", sa.String(128), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("first_ts", sa.Float, nullable=False),
        sa.Column("last_ts", sa.Float, nullable=False),
        sa.Column("first_pts", sa.Float, nullable=False),
        sa.Column("last_pts", sa.Float, nullable=False),
        sa.Column("ended", sa.Boolean, nullable=False),
        sa.Column("best_score", sa.Float),
        sa.Column("start_snapshot", sa.String(512)),
        sa.Column("best_snapshot", sa.String(512)),
        sa.Column("last_bbox", sa.Text),
    )
    op.create_index("ix_tracks_camera_time", "tracks", ["camera_id", "first_ts", "last_ts"])
    op.create_table(
        "summaries",
        sa.Column("summary_id", sa.String(64), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("start_ts", sa.Float, nullable=False),
        sa.Column("end_ts", sa.Float, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_summaries_camera_time", "summaries", ["camera_id", "start_ts"])
    op.create_table(
        "status",
        sa.Column("component", sa.String(16), primary_key=True),
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("status", "summaries", "tracks", "events", "queries", "cameras"):
        op.drop_table(name)
