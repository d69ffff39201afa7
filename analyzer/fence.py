"""Only the current owner's frames: drop what a stale ingest owner still published.

Ingest stamps every frame and end-of-stream marker with its owner epoch (the consumer-group
generation in which that process was given the camera, `ingest.ownership`). Generations only
grow, and a camera's messages share one partition, so once a higher epoch has been seen for a
camera, a lower one can only come from an owner that lost the camera and has not noticed yet
(a process that was paused, or cut off from the broker): its frames are dropped and counted.

One exception, so the fence cannot lock a camera out for good: if the group itself was reset
(a broker that lost its group state starts generations again from 0), the higher epoch goes
silent while a lower one streams on. After `reset_after_s` of that (this process's own clock;
no other host's clock is compared) the lower epoch is taken as the new truth.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class _Seen:
    epoch: int
    owner: str
    last: float  # monotonic time a message of this epoch was last admitted


class OwnerFence:
    def __init__(self, reset_after_s: float = 30.0) -> None:
        self.reset_after_s = reset_after_s
        self._cams: dict[str, _Seen] = {}
        self.dropped = 0

    def admit(self, camera_id: str, owner: str, epoch: int, now: float | None = None) -> bool:
        if epoch < 0:  # unfenced publisher (replay, older ingest): nothing to compare
            return True
        now = time.monotonic() if now is None else now
        seen = self._cams.get(camera_id)
        if seen is None or epoch >= seen.epoch:
            if seen is not None and epoch > seen.epoch and seen.owner != owner:
                log.info(
                    "camera %s: owner %s (epoch %d) replaces %s (epoch %d)",
                    camera_id, owner, epoch, seen.owner, seen.epoch,
                    extra={"camera_id": camera_id},
                )  # fmt: skip
            self._cams[camera_id] = _Seen(epoch, owner, now)
            return True
        if now - seen.last > self.reset_after_s:
            log.warning(
                "camera %s: epoch went back from %d to %d and the higher one is silent: "
                "the ingest group was reset; following %s",
                camera_id, seen.epoch, epoch, owner,
                extra={"camera_id": camera_id},
            )  # fmt: skip
            self._cams[camera_id] = _Seen(epoch, owner, now)
            return True
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 100 == 0:
            log.warning(
                "camera %s: dropped a frame from stale owner %s (epoch %d < %d); %d so far",
                camera_id, owner, epoch, seen.epoch, self.dropped,
                extra={"camera_id": camera_id},
            )  # fmt: skip
        return False

    def forget(self, camera_id: str) -> None:
        self._cams.pop(camera_id, None)
