"""Request body limits (ASGI middleware) and the /api/ask rate limit (token bucket per caller)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """413 for bodies over `max_bytes`, whether declared by Content-Length or streamed in chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        seen = 0
        started = rejected = False

        async def counted() -> Message:
            nonlocal seen, rejected
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes and not rejected:
                    rejected = True
                    if not started:
                        await self._reject(send)
                    # Tell the app the client went away: it stops reading, and its answer is dropped.
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if rejected:
                return
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        await self.app(scope, counted, guarded_send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """Token bucket per caller: `per_minute` calls, refilled continuously. 0 disables the endpoint."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, caller: str) -> float:
        """0.0 if allowed, else the seconds until the next call would be."""
        if self.per_minute <= 0:
            return float("inf")
        now = self.clock()
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / rate


class TokenBudget:
    """Tokens (in + out) all /api/ask callers together may spend per period; `None` = no budget.

    Fixed windows: the first spend opens one, and it resets `period_s` later. A call is let in while
    anything is left, so the budget can be overshot by the calls in flight when it runs out.
    """

    def __init__(
        self, tokens: int | None, period_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tokens = tokens
        self.period_s = period_s
        self.clock = clock
        self.spent = 0
        self._window_start: float | None = None
        self._lock = threading.Lock()

    def _roll(self, now: float) -> None:
        if self._window_start is None or now - self._window_start >= self.period_s:
            self._window_start, self.spent = now, 0

    def check(self) -> float:
        """0.0 if a call may start, else the seconds until the budget resets."""
        if self.tokens is None:
            return 0.0
        now = self.clock()
        with self._lock:
            self._roll(now)
            if self.spent < self.tokens:
                return 0.0
            assert self._window_start is not None
            return max(0.001, self._window_start + self.period_s - now)

    def spend(self, tokens: int) -> None:
        with self._lock:
            self._roll(self.clock())
            self.spent += max(0, tokens)
