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
    LargeBinary,
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
# -- search over history (sinks.search) -----------------------------------------------------------
# One row per searchable thing (a track or a summary): the text that is indexed for words, and
# its vector. Words: SQLite FTS5 table `search_fts` (external content, kept by triggers) or the
# PostgreSQL generated column `tsv` (GIN). Vectors: `vec` (float32 bytes, scored with numpy)
# or, on PostgreSQL with pgvector, the column `embedding vector(dim)` (HNSW), whose dimension
# is the embedder's and so is created at run time (`sinks.search_schema`). Those objects are not
# declared here: `include_object` keeps schema comparisons from calling them drift.
search_docs = Table(
    "search_docs",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True, doc="the FTS rowid"),
    Column("doc_id", String(64), nullable=False, unique=True, doc="track id (tracks.id) or summary_id"),
    Column("kind", String(8), nullable=False, doc="track | summary"),
    Column("camera_id", String(64), nullable=False),
    Column("query_id", String(64), nullable=False),
    Column("label", String(200), nullable=False),
    Column("camera_name", String(200), nullable=False),
    Column("query_text", Text, nullable=False),
    Column("description", Text),
    Column("start_ts", Float, nullable=False),
    Column("end_ts", Float, nullable=False),
    Column("snapshot", String(512)),
    Column("text", Text, nullable=False),
    Column("vec", LargeBinary, doc="L2-normalised float32; null until embedded (or with pgvector)"),
    Column("vseq", BigInteger, doc="vector version: readers refresh their in-memory copy from it"),
)
Index("ix_search_docs_filter", search_docs.c.kind, search_docs.c.camera_id, search_docs.c.start_ts)
Index("ix_search_docs_end", search_docs.c.end_ts)
Index("ix_search_docs_vseq", search_docs.c.vseq)

search_meta = Table(
    "search_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's filter: the FTS5 table (and its shadow tables), `tsv` and `embedding` are managed by SQL."""
    if name is None:
        return True
    if type_ == "table" and name.startswith("search_fts"):
        return False
    if type_ == "column" and name in ("tsv", "embedding"):
        return False
    return not (type_ == "index" and name in ("ix_search_docs_tsv", "ix_search_docs_embedding"))


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
