"""The store's tables (SQLAlchemy Core). Alembic migrations create them; tests may too.

Times are stored as UTC epoch seconds (float): portable between SQLite and PostgreSQL,
sortable, and cheap to compare. The full message travels in `payload` (JSON text) so the
API returns exactly what was on the topic.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for the long run.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

cameras = Table(
    "cameras",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "spec",
        Text,
        nullable=False,
        doc="CameraSpec JSON with the URL masked (bus.redact): the store never holds camera passwords",
    ),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("updated_at", Float, nullable=False),
)

queries = Table(
    "queries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("updated_at", Float, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True, doc="arrival order, for live feeds"),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("camera_id", String(64), nullable=False),
    Column("query_id", String(64), nullable=False),
    Column("track_id", String(128), nullable=False),
    Column("phase", String(8), nullable=False),
    Column("label", String(200), nullable=False),
    Column("ts", Float, nullable=False, doc="wall_ts as epoch seconds"),
    Column("pts_s", Float, nullable=False),
    Column("score", Float),
    Column("snapshot", String(512)),
    Column("received_at", Float, nullable=False),
    Column("payload", Text, nullable=False),
)
Index("ix_events_ts", events.c.ts, events.c.seq)
Index("ix_events_camera_ts", events.c.camera_id, events.c.ts)
Index("ix_events_query_ts", events.c.query_id, events.c.ts)
Index("ix_events_track", events.c.camera_id, events.c.query_id, events.c.track_id)

tracks = Table(
    "tracks",
    metadata,
    Column("id", String(64), primary_key=True, doc="stable id of (camera, query, track)"),
    Column("camera_id", String(64), nullable=False),
    Column("query_id", String(64), nullable=False),
    Column("track_id", String(128), nullable=False),
    Column("label", String(200), nullable=False),
    Column("first_ts", Float, nullable=False),
    Column("last_ts", Float, nullable=False),
    Column("first_pts", Float, nullable=False),
    Column("last_pts", Float, nullable=False),
    Column("ended", Boolean, nullable=False, default=False),
    Column("best_score", Float),
    Column("start_snapshot", String(512)),
    Column("best_snapshot", String(512)),
    Column("last_bbox", Text),
)
Index("ix_tracks_camera_time", tracks.c.camera_id, tracks.c.first_ts, tracks.c.last_ts)

summaries = Table(
    "summaries",
    metadata,
    Column("summary_id", String(64), primary_key=True),
    Column("camera_id", String(64), nullable=False),
    Column("query_id", String(64), nullable=False),
    Column("start_ts", Float, nullable=False),
    Column("end_ts", Float, nullable=False),
    Column("payload", Text, nullable=False),
)
Index("ix_summaries_camera_time", summaries.c.camera_id, summaries.c.start_ts)

status = Table(
    "status",
    metadata,
    Column("component", String(16), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("ts", Float, nullable=False),
    Column("payload", Text, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True, doc="arrival order, for live feeds"),
    Column("alert_id", String(64), nullable=False, unique=True),
    Column("rule_id", String(64), nullable=False),
    Column("camera_id", String(64), nullable=False),
    Column("track_id", String(128)),
    Column("condition", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("ts", Float, nullable=False, doc="wall_ts as epoch seconds"),
    Column("pts_s", Float, nullable=False),
    Column("snapshot", String(512)),
    Column("received_at", Float, nullable=False),
    Column("payload", Text, nullable=False),
)
Index("ix_alerts_ts", alerts.c.ts, alerts.c.seq)
Index("ix_alerts_camera_ts", alerts.c.camera_id, alerts.c.ts)
Index("ix_alerts_rule_ts", alerts.c.rule_id, alerts.c.ts)

rule_objects = Table(
    "rule_objects",
    metadata,
    Column("kind", String(8), primary_key=True, doc="zone | line | rule"),
    Column("id", String(64), primary_key=True),
    Column("camera_id", String(64), doc="zones and lines: their camera"),
    Column("spec", Text, nullable=False, doc="ZoneSpec / LineSpec / RuleSpec JSON"),
    Column("updated_at", Float, nullable=False),
)
segments = Table(
    "segments",
    metadata,
    Column("segment_id", String(64), primary_key=True),
    Column("camera_id", String(64), nullable=False),
    Column("source_session", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("path", String(512), nullable=False, doc="relative to data_dir/recordings; checked when opened"),
    Column("mode", String(16), nullable=False, doc="continuous | events (what retention does with it)"),
    Column("start_ts", Float, nullable=False, doc="wall time of the first packet, epoch seconds"),
    Column("end_ts", Float, nullable=False),
    Column("source_start_s", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("frames", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("complete", Boolean, nullable=False),
)
Index("ix_segments_camera_time", segments.c.camera_id, segments.c.start_ts)
Index("ix_segments_time", segments.c.start_ts)
