"""Ground truth for replay scoring: the Sightline JSON format and the loader.

A ground truth says, for a stretch of one video, which objects were there, when
(`intervals`), and where at the annotated times (`boxes`, original-frame pixels).
`times` lists the instants that were annotated exhaustively: at those instants every
visible object of the annotated labels has a box, so a prediction there that matches
nothing is a false positive. Predictions at other instants cannot be judged.

`load_truth` reads either this JSON or a MOTChallenge `gt.txt` (see `eval_mot`).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

BBox = tuple[float, float, float, float]
SCHEMA = "sightline.truth/1"
# Two instants closer than this are the same instant (float noise in pts and JSON).
TIME_EPS = 1e-6


class TruthError(ValueError):
    """A ground-truth file that cannot be read or does not make sense; the message says why."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TruthBox(_Frozen):
    t: float = Field(ge=0, description="media time in seconds")
    bbox: BBox = Field(description="[x1, y1, x2, y2] in original-frame pixels")
    ignore: bool = Field(
        False, description="a region where predictions are neither rewarded nor punished (MOT conf=0 rows)"
    )

    @field_validator("bbox")
    @classmethod
    def _proper(cls, v: BBox) -> BBox:
        x1, y1, x2, y2 = v
        if not all(math.isfinite(c) for c in v):
            raise ValueError("bbox coordinates must be finite numbers")
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"bbox {list(v)} must have x2 > x1 and y2 > y1")
        return v


class TruthObject(_Frozen):
    id: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1)
    intervals: tuple[tuple[float, float], ...] = Field(
        description="[start_s, end_s] spans when the object is visible, sorted, not overlapping"
    )
    boxes: tuple[TruthBox, ...] = ()
    note: str = ""

    @field_validator("intervals")
    @classmethod
    def _ordered(cls, v: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        if not v:
            raise ValueError("an object needs at least one interval")
        for (s, e), nxt in zip(v, [*v[1:], None], strict=True):
            if s < 0 or e < s:
                raise ValueError(f"interval [{s}, {e}] must have 0 <= start <= end")
            if nxt is not None and nxt[0] <= e:
                raise ValueError(f"intervals must be sorted and disjoint: [{s}, {e}] then {list(nxt)}")
        return v

    @model_validator(mode="after")
    def _boxes_inside(self) -> TruthObject:
        times = [b.t for b in self.boxes]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError(f"object {self.id!r}: box times must be increasing and unique")
        for b in self.boxes:
            if not self.visible_at(b.t):
                raise ValueError(f"object {self.id!r}: box at t={b.t} lies outside its intervals")
        return self

    def visible_at(self, t: float) -> bool:
        return any(s - TIME_EPS <= t <= e + TIME_EPS for s, e in self.intervals)

    @property
    def start_s(self) -> float:
        return self.intervals[0][0]

    @property
    def end_s(self) -> float:
        return self.intervals[-1][1]


class VideoInfo(_Frozen):
    file: str = Field(description="file name of the video the truth belongs to")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: float = Field(gt=0)
    start_s: float = Field(0.0, ge=0, description="start of the annotated segment")
    end_s: float = Field(description="end of the annotated segment")

    @model_validator(mode="after")
    def _segment(self) -> VideoInfo:
        if self.end_s < self.start_s:
            raise ValueError("video.end_s must not precede video.start_s")
        return self


class GroundTruth(_Frozen):
    SCHEMA: ClassVar[str] = SCHEMA

    schema_id: str = Field(SCHEMA, alias="schema")
    video: VideoInfo
    times: tuple[float, ...] = Field(
        (), description="instants annotated exhaustively; empty = every instant that has a box"
    )
    objects: tuple[TruthObject, ...] = ()
    note: str = Field("", description="how it was made, its rules and known limits")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("schema_id")
    @classmethod
    def _schema(cls, v: str) -> str:
        if v != SCHEMA:
            raise ValueError(f"schema {v!r} is not {SCHEMA!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> GroundTruth:
        ids = [o.id for o in self.objects]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"object ids must be unique; repeated: {dup}")
        v = self.video
        times = sorted(self.times)
        for t in times:
            if not v.start_s - TIME_EPS <= t <= v.end_s + TIME_EPS:
                raise ValueError(f"annotated time {t} is outside the segment {v.start_s}..{v.end_s}")
        for o in self.objects:
            for b in o.boxes:
                if not v.start_s - TIME_EPS <= b.t <= v.end_s + TIME_EPS:
                    raise ValueError(f"object {o.id!r}: box at t={b.t} is outside the segment")
                if times and not _listed(times, b.t):
                    raise ValueError(f"object {o.id!r}: box at t={b.t} is not one of the annotated `times`")
                x1, y1, x2, y2 = b.bbox
                if x1 < -1 or y1 < -1 or x2 > v.width + 1 or y2 > v.height + 1:
                    raise ValueError(f"object {o.id!r}: box {list(b.bbox)} at t={b.t} leaves the frame")
        return self

    def annotated_times(self) -> tuple[float, ...]:
        """The instants at which predictions are judged, sorted."""
        if self.times:
            return tuple(sorted(self.times))
        return tuple(sorted({b.t for o in self.objects for b in o.boxes}))

    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({o.label for o in self.objects}))

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)


def _listed(times: list[float], t: float) -> bool:
    i = bisect.bisect_left(times, t - TIME_EPS)
    return i < len(times) and abs(times[i] - t) <= TIME_EPS


def load_truth(
    path: str | Path, *, fps: float | None = None, video: str | Path | None = None, **mot_options: object
) -> GroundTruth:
    """Read a ground truth, detecting the format from the content.

    Sightline JSON (an object with "schema": "sightline.truth/1"), or MOTChallenge: a
    `gt.txt` file or a sequence directory holding `gt/gt.txt` (and `seqinfo.ini`).
    `fps` is needed for MOT files without a `seqinfo.ini`; `video` (the clip the MOT file
    annotates) places frame f at that clip's own f-th timestamp; `mot_options` go to
    `eval_mot.read_mot` (classes, min_visibility, label, width, height). A JSON truth carries its
    own times, so `fps` and `video` do not apply to it.
    """
    from sightline.eval.mot import read_mot

    p = Path(path)
    if p.is_dir():
        return read_mot(p, fps=fps, video=video, **mot_options)  # type: ignore[arg-type]
    if not p.is_file():
        raise TruthError(f"{p}: no such ground-truth file")
    try:
        text = p.read_text(encoding="utf-8-sig")  # tolerate a BOM from Windows editors
    except (OSError, UnicodeDecodeError) as e:
        raise TruthError(f"{p}: cannot read as UTF-8 text: {e}") from e
    if text.lstrip().startswith("{"):
        if mot_options:
            raise TruthError(f"{p}: MOT options {sorted(mot_options)} do not apply to a JSON ground truth")
        return parse_truth_json(text, source=str(p))
    return read_mot(p, fps=fps, video=video, **mot_options)  # type: ignore[arg-type]


def parse_truth_json(text: str, *, source: str = "<string>") -> GroundTruth:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TruthError(f"{source}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise TruthError(f"{source}: a ground truth is a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise TruthError(f'{source}: expected "schema": "{SCHEMA}", got {data.get("schema")!r}')
    try:
        return GroundTruth.model_validate(data)
    except ValidationError as e:
        raise TruthError(f"{source}: invalid ground truth:\n{_errors(e)}") from e


def _errors(e: ValidationError) -> str:
    lines = []
    for err in e.errors()[:10]:
        where = ".".join(str(x) for x in err["loc"]) or "(top)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def intervals_from_times(times: Iterable[float], max_gap_s: float) -> tuple[tuple[float, float], ...]:
    """Join sorted instants into [start, end] spans, breaking where a gap exceeds `max_gap_s`."""
    spans: list[list[float]] = []
    for t in sorted(times):
        if spans and t - spans[-1][1] <= max_gap_s + TIME_EPS:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    return tuple((s, e) for s, e in spans)
