"""Zones, lines and rules: the objects a rules file holds and the API takes as JSON bodies.

Coordinates are normalised to the frame (0–1, x right, y down) so a rule survives a change of
resolution. Validation here is about one object (or one file) alone; whether a rule's query
exists is the API's to check, since only it knows the registered queries.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from bus.fields import EntityId, Text


def _in_frame(p: tuple[float, float]) -> tuple[float, float]:
    if not (0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0):
        raise ValueError(f"{list(p)} is outside the frame: coordinates are 0–1 (normalised)")
    return p


# Checked by a validator rather than per-item bounds: OpenAPI tools read bounds inside a tuple's
# `prefixItems` badly, and the message says what is wrong in the user's terms.
Point = Annotated[tuple[float, float], AfterValidator(_in_frame)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_touch(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Closed segments p1p2 and q1q2 share a point."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True

    def on(a: Point, b: Point, c: Point, d: float) -> bool:
        return (
            d == 0
            and min(a[0], b[0]) <= c[0] <= max(a[0], b[0])
            and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])
        )

    return on(q1, q2, p1, d1) or on(q1, q2, p2, d2) or on(p1, p2, q1, d3) or on(p1, p2, q2, d4)


class ZoneSpec(_Spec):
    id: EntityId
    camera: EntityId
    polygon: tuple[Point, ...] = Field(min_length=3, max_length=64)
    name: Text = Field("", max_length=200)

    @field_validator("polygon")
    @classmethod
    def _simple(cls, poly: tuple[Point, ...]) -> tuple[Point, ...]:
        n = len(poly)
        for i in range(n):
            for j in range(i + 1, n):
                if j == i + 1 or (i == 0 and j == n - 1):
                    continue  # neighbours share a vertex by construction
                if _segments_touch(poly[i], poly[(i + 1) % n], poly[j], poly[(j + 1) % n]):
                    raise ValueError(f"polygon intersects itself (edges {i} and {j})")
        if abs(sum(_cross((0.0, 0.0), poly[i], poly[(i + 1) % n]) for i in range(n))) < 1e-12:
            raise ValueError("polygon has no area (points repeated or in a line)")
        return poly


class LineSpec(_Spec):
    id: EntityId
    camera: EntityId
    points: tuple[Point, Point]
    inside: Point = Field(description="any point on the side that counts as 'in'")
    name: Text = Field("", max_length=200)

    @model_validator(mode="after")
    def _shape(self) -> LineSpec:
        (ax, ay), (bx, by) = self.points
        if (ax - bx) ** 2 + (ay - by) ** 2 < 1e-12:
            raise ValueError("points: a line needs two different points (zero length)")
        if abs(_cross(self.points[0], self.points[1], self.inside)) < 1e-12:
            raise ValueError("inside: the point lies on the line, so it names no side")
        return self


class Schedule(_Spec):
    """Active on `weekdays` from `from` to `to` local time in `timezone`; `to` < `from` crosses midnight.

    A window that crosses midnight belongs to the weekday it starts on (Fri 22:00–06:00 covers
    Saturday 03:00).
    """

    timezone: str = "UTC"
    from_: str = Field("00:00", alias="from", description="HH:MM local time")
    to: str = Field("23:59", description="HH:MM local time, exclusive")
    weekdays: tuple[Weekday, ...] = WEEKDAYS

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v

    @field_validator("from_", "to")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time of day HH:MM")
        return v

    @model_validator(mode="after")
    def _window(self) -> Schedule:
        if self.from_ == self.to:
            raise ValueError("from and to are equal: the window would be empty")
        if not self.weekdays:
            raise ValueError("weekdays: at least one day")
        return self

    @property
    def start(self) -> time:
        return time.fromisoformat(self.from_)

    @property
    def end(self) -> time:
        return time.fromisoformat(self.to)


class ZoneRef(_Spec):
    zone: EntityId


class Dwell(_Spec):
    zone: EntityId
    seconds: float = Field(ge=0, le=7 * 86400)


class Cross(_Spec):
    line: EntityId
    direction: Literal["in", "out", "any"] = "any"


class Count(_Spec):
    zone: EntityId
    min: int = Field(ge=1, le=10_000, description="at least this many objects in the zone")
    seconds: float = Field(0.0, ge=0, le=7 * 86400)


class Absent(_Spec):
    zone: EntityId
    seconds: float = Field(ge=0, le=7 * 86400)


Condition = Literal["enter", "leave", "dwell", "cross", "count", "absent"]


class When(_Spec):
    """Exactly one condition."""

    enter: ZoneRef | None = None
    leave: ZoneRef | None = None
    dwell: Dwell | None = None
    cross: Cross | None = None
    count: Count | None = None
    absent: Absent | None = None

    @model_serializer(mode="wrap")
    def _only_the_condition(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # `{"dwell": {...}}`, as written, not five nulls beside it.
        return {k: v for k, v in handler(self).items() if v is not None}

    @model_validator(mode="after")
    def _one(self) -> When:
        given = [
            k for k in ("enter", "leave", "dwell", "cross", "count", "absent") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"exactly one condition of enter/leave/dwell/cross/count/absent (got {given or 'none'})"
            )
        return self

    @property
    def kind(self) -> Condition:
        kinds: tuple[Condition, ...] = ("enter", "leave", "dwell", "cross", "count", "absent")
        for k in kinds:
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated: one condition is set")

    @property
    def body(self) -> ZoneRef | Dwell | Cross | Count | Absent:
        body = getattr(self, self.kind)
        assert body is not None
        return body  # type: ignore[no-any-return]

    @property
    def zone(self) -> str | None:
        return getattr(self.body, "zone", None)

    @property
    def line(self) -> str | None:
        return getattr(self.body, "line", None)


class RuleSpec(_Spec):
    id: EntityId
    query: EntityId | None = Field(None, description="the grounding query whose tracks the rule watches")
    label: Text | None = Field(None, max_length=200, description="or: tracks with this label")
    when: When
    schedule: Schedule | None = None
    cooldown_s: float = Field(
        0.0, ge=0, le=7 * 86400, description="media time after an alert when the rule keeps quiet"
    )
    severity: Literal["info", "warning", "critical"] = "warning"
    anchor: Literal["bottom_center", "center"] = Field(
        "bottom_center", description="which point of the box is the object's position (feet by default)"
    )
    enabled: bool = True
    name: Text = Field("", max_length=200)

    @model_validator(mode="after")
    def _target(self) -> RuleSpec:
        if self.query is None and self.label is None:
            raise ValueError("a rule watches a `query` or a `label`: give one")
        return self

    def matches(self, query_id: str, label: str) -> bool:
        return (self.query is None or self.query == query_id) and (self.label is None or self.label == label)


class RuleSet(_Spec):
    """A rules file (YAML) or the state the API serves: zones, lines and the rules over them."""

    zones: tuple[ZoneSpec, ...] = ()
    lines: tuple[LineSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> RuleSet:
        problems = reference_problems(self.zones, self.lines, self.rules)
        groups: tuple[tuple[str, tuple[ZoneSpec | LineSpec | RuleSpec, ...]], ...] = (
            ("zones", self.zones),
            ("lines", self.lines),
            ("rules", self.rules),
        )
        for kind, items in groups:
            seen: set[str] = set()
            for i, item in enumerate(items):
                if item.id in seen:
                    problems.append(f"{kind}.{i}.id: {item.id!r} is used twice")
                seen.add(item.id)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def reference_problems(
    zones: tuple[ZoneSpec, ...] | list[ZoneSpec],
    lines: tuple[LineSpec, ...] | list[LineSpec],
    rules: tuple[RuleSpec, ...] | list[RuleSpec],
) -> list[str]:
    """One line per rule that names a zone or line that does not exist (path included)."""
    zone_ids, line_ids = {z.id for z in zones}, {ln.id for ln in lines}
    out = []
    for i, r in enumerate(rules):
        kind = r.when.kind
        if r.when.zone is not None and r.when.zone not in zone_ids:
            out.append(f"rules.{i}.when.{kind}.zone: unknown zone {r.when.zone!r}")
        if r.when.line is not None and r.when.line not in line_ids:
            out.append(f"rules.{i}.when.{kind}.line: unknown line {r.when.line!r}")
    return out


def load_ruleset(data: Any) -> RuleSet:
    """A parsed YAML/JSON mapping → RuleSet (raises pydantic's ValidationError with paths)."""
    return RuleSet.model_validate(data or {})
