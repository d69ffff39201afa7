"""Message contracts: one frozen, versioned pydantic model per message kind.

Every JSON payload carries `"schema": "sightline.<kind>/<version>"` so a consumer
can refuse what it does not understand. Frame pixels travel as JPEG bytes; their
`FrameMeta` travels in a Kafka header.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bus.fields import ID_PATTERN as ID_PATTERN  # re-exported: the API checks path ids with it
from bus.fields import EntityId, Text
from bus.rulespec import LineSpec, RuleSpec, ZoneSpec
from configs.settings import Budget, Regions

BBox = tuple[float, float, float, float]
RecordMode = Literal["off", "continuous", "events"]

# Fixed namespace so ids are the same on every machine and in every run.
ID_NAMESPACE = uuid.UUID("6f1d9c2e-5b7a-4e0f-9a43-2c8d7e15b0a1")


_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def stable_id(*parts: object) -> str:
    """Deterministic id: a redelivered input yields the same id.

    `str(uuid.uuid5(ID_NAMESPACE, "|".join(parts)))`, written out (SHA-1 of namespace + name,
    version 5, RFC 4122 variant): the same string at under half the cost, which counts where
    every alert and event gets one (the rules bench raises one alert per four events)."""
    h = hashlib.sha1(
        _NAMESPACE_BYTES + "|".join([str(p) for p in parts]).encode(), usedforsecurity=False
    ).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Base of every message: frozen, no unknown fields, schema tag checked."""

    # No NaN/Infinity: JSON has none, and one stored would break every JSON answer that includes it.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)
    SCHEMA: ClassVar[str] = ""

    schema_id: str = Field("", alias="schema")

    @model_validator(mode="before")
    @classmethod
    def _tag(cls, data: Any) -> Any:
        if isinstance(data, dict):
            tag = data.get("schema", data.get("schema_id"))
            if tag in (None, ""):
                data = {**data, "schema": cls.SCHEMA}
                data.pop("schema_id", None)
            elif tag != cls.SCHEMA:
                raise ValueError(f"schema {tag!r} is not {cls.SCHEMA!r}")
        return data

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class FrameMeta(Envelope):
    SCHEMA: ClassVar[str] = "sightline.frame/1"

    camera_id: EntityId
    frame_id: int = Field(ge=0, description="monotonic per camera per source session")
    source_session: str = Field(description="changes every time the source is (re)opened")
    pts_s: float = Field(description="media time from the stream's PTS and time_base")
    wall_ts: datetime = Field(description="UTC capture time")
    width: int = Field(gt=0, description="original frame width")
    height: int = Field(gt=0)
    encoded_width: int = Field(gt=0, description="width of the JPEG that travels")
    encoded_height: int = Field(gt=0)
    keyframe: bool = False
    motion_score: float | None = None
    motion_regions: tuple[tuple[float, float, float, float], ...] | None = Field(
        None,
        max_length=64,
        description="where the picture changed since the previous sampled frame: [x1,y1,x2,y2] as 0..1 "
        "fractions of the frame, from the motion gate; () = nothing moved, null = not measured",
    )
    sampled_reason: Literal["sample", "motion", "scene_change", "heartbeat", "keyframe", "first"] = "sample"
    live: bool = Field(True, description="paced like a camera; false for a file played as fast as possible")
    owner: str = Field("", description="the ingest worker that published it")
    owner_epoch: int = Field(
        -1,
        ge=-1,
        description="consumer-group generation in which `owner` was given this camera; consumers drop "
        "frames whose epoch is below one they already saw for the camera (a stale owner); -1 = unfenced",
    )


class ObjectEvent(Envelope):
    SCHEMA: ClassVar[str] = "sightline.object_event/1"

    event_id: str
    phase: Literal["start", "update", "end"]
    camera_id: EntityId
    query_id: EntityId
    query_text: str
    track_id: str
    label: str
    bbox: BBox = Field(description="[x1,y1,x2,y2] in pixels of the original frame")
    bbox_norm: BBox = Field(description="bbox divided by the original width/height, 0..1")
    frame_id: int
    source_session: str = ""
    pts_s: float = Field(description="media time of the frame; for `end`, when the object was last seen")
    wall_ts: datetime
    closed_at: datetime | None = Field(None, description="`end` only: when the track was closed")
    score: float | None = None
    engine: str
    model: str
    latency_ms: float = 0.0
    snapshot: str | None = None
    description: str | None = Field(
        None, max_length=1000, description="one sentence about the object, for queries with `describe: true`"
    )
    description_engine: str | None = Field(
        None, description="who wrote it; `baseline` means a template (label + colour), not a model"
    )

    @field_validator("bbox_norm")
    @classmethod
    def _unit(cls, v: BBox) -> BBox:
        if not all(-1e-6 <= c <= 1 + 1e-6 for c in v):
            raise ValueError("bbox_norm must lie in 0..1")
        return v


class Segment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    start_s: float
    end_s: float
    description: str


class Summary(Envelope):
    SCHEMA: ClassVar[str] = "sightline.summary/1"

    summary_id: str
    camera_id: EntityId
    query_id: EntityId
    query_text: str
    window_start_s: float
    window_end_s: float
    window_start_wall: datetime
    window_end_wall: datetime
    text: str
    segments: tuple[Segment, ...] = ()
    thinking: str | None = None
    frames: int = 0
    engine: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0


class StatusUpdate(Envelope):
    SCHEMA: ClassVar[str] = "sightline.status/1"

    # "budget": a camera's model-spend state, from the analyzer (state "budget" while degraded)
    component: Literal["camera", "ingest", "analyzer", "sink", "api", "rules", "budget"]
    id: str = Field(description="camera_id for cameras, worker id otherwise")
    worker: str = ""
    state: Literal["starting", "streaming", "reconnecting", "running", "stopped", "failed", "budget"]
    reason: str = ""
    ts: datetime = Field(default_factory=utcnow)
    source_session: str = ""
    fps_in: float = 0.0
    fps_out: float = 0.0
    lag_s: float = 0.0
    drops: dict[str, int] = Field(default_factory=dict)
    counters: dict[str, float] = Field(default_factory=dict)


class CameraSpec(Envelope):
    SCHEMA: ClassVar[str] = "sightline.camera/1"

    id: EntityId
    url: Text = Field(min_length=1, max_length=2048, description="file path, file://, rtsp(s)://, http(s)://")
    name: Text = Field("", max_length=200)
    enabled: bool = True
    sample_fps: float | None = Field(None, gt=0, le=60)
    gate: Literal["always", "motion", "scene_change"] | None = None
    realtime: bool | None = Field(None, description="files: pace like a live camera")
    loop: bool = Field(False, description="files: start again at the end")
    keyframes_only: bool | None = None
    record: RecordMode | None = Field(
        None, description="live cameras: off, continuous or events (default: recording.mode)"
    )
    budget: Budget | None = Field(None, description="model spend cap (default: analyzer.budget)")
    regions: Regions | None = Field(
        None, description="send moving regions, not whole frames (default: analyzer.regions)"
    )


class QuerySpec(Envelope):
    SCHEMA: ClassVar[str] = "sightline.query/1"

    id: EntityId
    text: Text = Field(min_length=1, max_length=1000)
    kind: Literal["grounding", "summary"] = "grounding"
    cameras: tuple[str, ...] = ("*",)
    interval_s: float | None = Field(None, ge=0, description="grounding: min gap between calls per camera")
    window_s: float = Field(30.0, gt=0, le=3600, description="summary window length")
    stride_s: float | None = Field(
        None, gt=0, description="summary: gap between window starts (default window_s)"
    )
    thinking: bool = False
    enabled: bool = True
    describe: bool = Field(
        False, description="grounding: one sentence per tracked object (an engine call per track, counted)"
    )
    budget: Budget | None = Field(None, description="model spend cap of this query on each camera")
    priority: int = Field(0, ge=-100, le=100, description="under a camera budget, lower degrades first")
    regions: Regions | None = Field(
        None, description="send moving regions, not whole frames (default: the camera's)"
    )

    def applies_to(self, camera_id: str) -> bool:
        return self.enabled and ("*" in self.cameras or camera_id in self.cameras)


class ControlMessage(Envelope):
    """A registration or deletion on the control topic, keyed `<kind>:<id>` (camera, query, and the
    zones, lines and rules the rules process follows)."""

    SCHEMA: ClassVar[str] = "sightline.control/1"

    op: Literal["upsert", "delete"]
    kind: Literal["camera", "query", "zone", "line", "rule"]
    id: EntityId
    camera: CameraSpec | None = None
    query: QuerySpec | None = None
    zone: ZoneSpec | None = None
    line: LineSpec | None = None
    rule: RuleSpec | None = None
    ts: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def body(self) -> CameraSpec | QuerySpec | ZoneSpec | LineSpec | RuleSpec | None:
        return getattr(self, self.kind)  # type: ignore[no-any-return]

    @model_validator(mode="after")
    def _payload(self) -> ControlMessage:
        body = self.body
        if self.op == "upsert" and body is None:
            raise ValueError(f"upsert of a {self.kind} needs its `{self.kind}` body")
        if body is not None and body.id != self.id:
            raise ValueError("body id differs from message id")
        return self


class EndOfStream(Envelope):
    """Sent on the frames topic, in order with the frames, when a source ends or a camera stops."""

    SCHEMA: ClassVar[str] = "sightline.end_of_stream/1"

    camera_id: EntityId
    source_session: str
    last_frame_id: int = -1
    reason: str = "end of stream"
    ts: datetime = Field(default_factory=utcnow)
    owner_epoch: int = Field(-1, ge=-1, description="as FrameMeta.owner_epoch")


class RecordedSegment(Envelope):
    """A closed recording segment (ingest → recordings topic → the sink's segment index).

    The file lives at `data_dir/recordings/<path>`; `path` is relative and checked again where
    it is opened. Media times are the segment file's own (its first packet is at 0);
    `start_ts` is the wall-clock time of that first packet, so wall = start_ts + media time.
    """

    SCHEMA: ClassVar[str] = "sightline.segment/1"

    segment_id: str
    camera_id: EntityId
    source_session: str
    seq: int = Field(ge=0, description="n-th segment of the session")
    path: str = Field(max_length=512, pattern=r"^[A-Za-z0-9_.\-/]+\.mp4$")
    mode: Literal["continuous", "events"]
    start_ts: datetime
    end_ts: datetime
    source_start_s: float = Field(description="media time of the first packet in the source stream")
    duration_s: float = Field(ge=0)
    frames: int = Field(ge=0)
    bytes: int = Field(ge=0)
    complete: bool = Field(True, description="false: closed after a write error; may be cut short")


class DeadLetter(Envelope):
    SCHEMA: ClassVar[str] = "sightline.deadletter/1"

    topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    worker: str = ""
    payload_b64: str = Field("", description="the original value, base64, truncated to 64 KiB")
    ts: datetime = Field(default_factory=utcnow)


class Alert(Envelope):
    """A rule fired (`rules/`); keyed by camera on the alerts topic. The id is deterministic in
    (rule, camera, session, track, condition, episode), so a redelivered event or a restarted
    rules process yields the same id and the store keeps one row."""

    SCHEMA: ClassVar[str] = "sightline.alert/1"

    alert_id: str
    rule_id: EntityId
    camera_id: EntityId
    condition: Literal["enter", "leave", "dwell", "cross", "count", "absent"]
    severity: Literal["info", "warning", "critical"] = "warning"
    track_id: str | None = Field(None, description="none for count and absent")
    query_id: str | None = None
    label: str | None = None
    zone_id: str | None = None
    line_id: str | None = None
    direction: Literal["in", "out"] | None = None
    count: int | None = Field(None, description="count: objects in the zone when it fired")
    seconds: float | None = Field(None, description="dwell/count/absent: how long the condition had held")
    source_session: str = ""
    pts_s: float = Field(description="media time at which the rule fired")
    wall_ts: datetime
    bbox_norm: BBox | None = None
    event_id: str | None = Field(None, description="the object event that made the rule fire")
    snapshot: str | None = None


ALL_CONTRACTS: tuple[type[Envelope], ...] = (
    FrameMeta,
    ObjectEvent,
    Summary,
    StatusUpdate,
    CameraSpec,
    QuerySpec,
    ControlMessage,
    EndOfStream,
    RecordedSegment,
    DeadLetter,
    Alert,
)
