"""Telling "the source stalled" from "this process was not running".

A process can stop running for a while without noticing: SIGSTOP, a frozen VM, a long
GC or swap storm. The monotonic clock keeps advancing meanwhile, so every watchdog that
compares two readings would blame whatever it watches. This module keeps a ticker thread
that wakes every `TICK_S`; a gap between two ticks much longer than that means the whole
process was not scheduled. A watchdog asks `paused_since(t)` before it blames its source.

It is process-wide and started lazily: one small thread, whatever the number of cameras.
"""

from __future__ import annotations

import threading
import time

TICK_S = 0.1
SLACK_S = 1.0  # a tick this late means the process was not running (or a hopelessly starved host)


class PauseClock:
    def __init__(self, tick_s: float = TICK_S, slack_s: float = SLACK_S) -> None:
        self.tick_s, self.slack_s = tick_s, slack_s
        self._lock = threading.Lock()
        self._last_tick = time.monotonic()
        self._pauses: list[tuple[float, float]] = []  # (start, end) monotonic, most recent last
        self._thread: threading.Thread | None = None

    def start(self) -> PauseClock:
        with self._lock:
            if self._thread is None:
                self._last_tick = time.monotonic()
                self._thread = threading.Thread(target=self._run, name="pause-clock", daemon=True)
                self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            time.sleep(self.tick_s)
            now = time.monotonic()
            with self._lock:
                if now - self._last_tick > self.tick_s + self.slack_s:
                    self._pauses.append((self._last_tick, now))
                    del self._pauses[:-64]
                self._last_tick = now

    def paused_since(self, since: float) -> float:
        """Seconds this process was not running after `since` (0.0 when it ran all along).

        Counts a pause still being noticed: right after a resume another thread may run before
        the ticker does, and the ticker's own lateness is then the evidence.
        """
        now = time.monotonic()
        with self._lock:
            total = sum(end - max(start, since) for start, end in self._pauses if end > since)
            late = now - self._last_tick
            if self._thread is not None and late > self.tick_s + self.slack_s:
                total += now - max(self._last_tick, since)
        return max(0.0, total)


_CLOCK = PauseClock()


def clock() -> PauseClock:
    """The process's pause clock, started on first use."""
    return _CLOCK.start()
