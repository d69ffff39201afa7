"""What the analyzer worker needs to keep its engine concurrency full with no poll-batch barrier.

Each camera has a lane: its records in order, worked by one task, so tracking sees the camera's
frames in order while other cameras' lanes run on. Offsets are committed per partition by the
`Ledger`: a commit never passes a record that is dispatched but not yet settled (its events and
the camera's checkpoint sent), nor one that was dropped to be delivered again (a failed frame, a
stop), so delivery stays at-least-once exactly as with per-batch commits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka.consumer.fetcher import ConsumerRecord

from analyzer.core import Outputs
from bus.contracts import FrameMeta


@dataclass(frozen=True)
class Peeked:
    """A frames-topic record and, when it is a good frame, its metadata and JPEG (decoded once)."""

    record: ConsumerRecord
    frame: tuple[FrameMeta, bytes] | None


# A lane item: a record, or an action on the camera's state that must happen in order with its
# frames (tracks closed because the camera or a query was removed).
Item = Peeked | Callable[[], Outputs]


@dataclass
class Lane:
    camera_id: str
    partition: int = -1
    queue: deque[Item] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    busy: bool = False  # inside a frame: the camera's state is mid-update, no checkpoint now
    unsettled: list[tuple[int, int]] = field(
        default_factory=list
    )  # (partition, offset) done, not checkpointed
    dirty: bool = False  # state changed since the last checkpoint

    @property
    def active(self) -> bool:
        return self.busy or bool(self.queue)


class Ledger:
    """Per partition: offsets dispatched and not settled, the highest settled, and a floor below
    which a commit must stay (the first record dropped for redelivery)."""

    def __init__(self) -> None:
        self.pending: dict[int, set[int]] = {}
        self.high: dict[int, int] = {}
        self.floor: dict[int, int] = {}
        self.committed: dict[int, int] = {}

    def dispatched(self, partition: int, offset: int) -> None:
        self.pending.setdefault(partition, set()).add(offset)

    def settled(self, partition: int, offset: int) -> None:
        self.pending.get(partition, set()).discard(offset)
        self.high[partition] = max(self.high.get(partition, 0), offset + 1)

    def dropped(self, partition: int, offset: int) -> None:
        """Not processed here and to be delivered again: commits stay at or below it."""
        self.pending.get(partition, set()).discard(offset)
        self.floor[partition] = min(self.floor.get(partition, offset), offset)

    def in_flight(self, partition: int) -> bool:
        return bool(self.pending.get(partition))

    def commit_offset(self, partition: int) -> int | None:
        bounds = [min(p)] if (p := self.pending.get(partition)) else []
        if partition in self.high:
            bounds.append(self.high[partition])
        if partition in self.floor:
            bounds.append(self.floor[partition])
        return min(bounds) if bounds else None

    def targets(self) -> dict[int, int]:
        """Where each known partition's commit may go now."""
        out = {}
        for partition in set(self.pending) | set(self.high) | set(self.floor):
            offset = self.commit_offset(partition)
            if offset is not None:
                out[partition] = offset
        return out

    def rewound(self, partition: int, offset: int) -> None:
        """The consumer was sent back to `offset`: nothing beyond it counts as done any more."""
        self.pending.pop(partition, None)
        self.floor.pop(partition, None)
        self.high[partition] = offset

    def forget(self, partition: int) -> None:
        for table in (self.pending, self.high, self.floor, self.committed):
            table.pop(partition, None)
