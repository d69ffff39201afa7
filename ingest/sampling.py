"""Which decoded frames to keep (by media time), and pacing files like a live camera."""

from __future__ import annotations

import math
import threading
import time

REBASE_S = 1.0  # a realtime file this far behind its schedule restarts the schedule


class Sampler:
    """Keeps at most `fps` frames per second of media time: the first frame of each 1/fps slot.

    Slots come from the PTS, not from counting frames, so variable frame rates and dropped
    frames do not skew the rate, and the kept count is about duration × fps.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError("sample fps must be > 0")
        self.fps = fps
        self._last_slot: int | None = None

    def keep(self, pts_s: float) -> bool:
        # A tiny epsilon keeps pts like 0.49999999 (rounding of time_base) in the right slot.
        slot = math.floor(pts_s * self.fps + 1e-6)
        if self._last_slot is not None and slot <= self._last_slot:
            if slot < self._last_slot - 1:  # media time jumped back (a stream restart): follow it
                self._last_slot = slot
                return True
            return False
        self._last_slot = slot
        return True


class Pacer:
    """Holds frames back until their media time has elapsed on the wall clock (realtime files)."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._origin: tuple[float, float] | None = None  # (monotonic, pts)

    def reset(self) -> None:
        self._origin = None

    def wait(self, pts_s: float) -> None:
        now = time.monotonic()
        if self._origin is None or pts_s < self._origin[1]:
            self._origin = (now, pts_s)
            return
        due = self._origin[0] + (pts_s - self._origin[1])
        if now - due > REBASE_S:
            # Far behind: this process was paused (or starved). A camera does not replay what it
            # showed meanwhile in a burst; the file goes on from here at camera pace.
            self._origin = (now, pts_s)
            return
        if due > now:
            self._stop.wait(due - now)
