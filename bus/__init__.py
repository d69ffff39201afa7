"""Message bus: contracts, topic names, Kafka wrappers and the embedded broker."""

from bus.contracts import (
    CameraSpec,
    ControlMessage,
    DeadLetter,
    Envelope,
    FrameMeta,
    ObjectEvent,
    QuerySpec,
    Segment,
    StatusUpdate,
    Summary,
    stable_id,
)
from bus.topics import Topics

__all__ = [
    "CameraSpec",
    "ControlMessage",
    "DeadLetter",
    "Envelope",
    "FrameMeta",
    "ObjectEvent",
    "QuerySpec",
    "Segment",
    "StatusUpdate",
    "Summary",
    "Topics",
    "stable_id",
]
