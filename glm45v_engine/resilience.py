"""Retry pacing and a circuit breaker, so a sick server gets fewer requests, not more."""

from __future__ import annotations

import enum
import random
import time


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # normal
    OPEN = "open"  # failing fast until the reset time
    HALF_OPEN = "half_open"  # one trial request decides


class CircuitBreaker:
    """Opens after `failures` consecutive failed attempts; lets one trial through after `reset_s`."""

    def __init__(self, failures: int, reset_s: float) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.state = BreakerState.CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.opens = 0
        self._trial_out = False

    def allow(self) -> bool:
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and time.monotonic() - self.opened_at >= self.reset_s:
            self.state, self._trial_out = BreakerState.HALF_OPEN, False
        if self.state is BreakerState.HALF_OPEN and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def retry_in(self) -> float:
        return max(0.0, self.reset_s - (time.monotonic() - self.opened_at))

    def abandon(self) -> None:
        """The trial request was cancelled before it got an answer: it decided nothing, so the next
        caller may try (otherwise a cancelled trial would keep the breaker half open for good)."""
        if self.state is BreakerState.HALF_OPEN:
            self._trial_out = False

    def success(self) -> None:
        self.state, self.consecutive, self._trial_out = BreakerState.CLOSED, 0, False

    def failure(self) -> None:
        self.consecutive += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive >= self.failures:
            if self.state is not BreakerState.OPEN:
                self.opens += 1
            self.state, self.opened_at, self._trial_out = BreakerState.OPEN, time.monotonic(), False


def backoff_delay(
    attempt: int, base_s: float, cap_s: float = 10.0, retry_after: float | None = None
) -> float:
    """Exponential backoff with ±25 % jitter (so retrying clients do not synchronise)."""
    if retry_after is not None:
        return min(cap_s, max(0.0, retry_after))
    delay = min(cap_s, base_s * (2**attempt))
    return float(delay * random.uniform(0.75, 1.25))
