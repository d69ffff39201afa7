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


# Answerable whatever the load: orchestrators and scrapers must see an overloaded API as alive.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ConcurrencyLimit:
    """503 once `max_requests` requests are in flight, except on EXEMPT_PATHS.

    Replaces uvicorn's `limit_concurrency`, which counts open connections too and answers 503 to
    everything, `/healthz` included, once they are used up (511 event streams from one viewer did it).
    Event streams are capped separately and much lower (StreamSlots), so they cannot fill this."""

    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_requests:
            body = b'{"detail":"the server is busy; retry shortly"}'
            headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        self.in_flight += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class StreamSlots:
    """Open event streams, counted in total, per API key and per client address.

    `acquire` says why a new stream is refused (None = granted); every grant is released once,
    whatever way the stream ends."""

    def __init__(self, total: int, per_key: int, per_client: int) -> None:
        self.total, self.per_key, self.per_client = total, per_key, per_client
        self.open = 0
        self.by_key: dict[str, int] = {}
        self.by_client: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, client: str) -> str | None:
        with self._lock:
            if self.by_key.get(key, 0) >= self.per_key:
                return f"this API key already has {self.per_key} open event streams"
            if self.by_client.get(client, 0) >= self.per_client:
                return f"this address already has {self.per_client} open event streams"
            if self.open >= self.total:
                return f"the server already serves {self.total} event streams"
            self.open += 1
            self.by_key[key] = self.by_key.get(key, 0) + 1
            self.by_client[client] = self.by_client.get(client, 0) + 1
            return None

    def release(self, key: str, client: str) -> None:
        with self._lock:
            self.open -= 1
            for table, name in ((self.by_key, key), (self.by_client, client)):
                table[name] -= 1
                if not table[name]:
                    del table[name]  # no entry per address ever seen: the tables stay small
