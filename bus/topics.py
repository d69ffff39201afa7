"""Topic names. Keys are camera ids so one camera's messages stay ordered."""

from __future__ import annotations

from dataclasses import dataclass

from configs.settings import BusConfig


@dataclass(frozen=True)
class Topics:
    control: str
    frames: str
    detections: str
    summaries: str
    status: str
    deadletter: str
    analyzer_state: str  # the analyzer's tracker checkpoints, keyed by camera (compacted in production)
    alerts: str  # rules → sinks: `Alert`s, keyed by camera
    rules_state: str  # the rules process's evaluator checkpoints, keyed by camera (compacted in production)
    recordings: str  # closed recording segments (`RecordedSegment`), keyed by camera; the sink indexes them

    @classmethod
    def from_config(cls, bus: BusConfig) -> Topics:
        return cls(**{kind: bus.topic(kind) for kind in cls.__dataclass_fields__})

    def all(self) -> list[str]:
        return [getattr(self, name) for name in self.__dataclass_fields__]
