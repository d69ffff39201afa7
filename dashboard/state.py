"""What the app shares between requests: settings, the store and (when a broker is set) a producer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, Request

from bus.contracts import ControlMessage
from bus.topics import Topics
from configs import Settings
from dashboard.limits import RateLimiter, StreamSlots, TokenBudget
from sinks.store import Store

if TYPE_CHECKING:
    from glm45v_engine import VisionEngine
    from sinks.search import SearchIndex


@dataclass
class AppState:
    settings: Settings
    store: Store
    topics: Topics
    ask_limiter: RateLimiter
    ask_budget: TokenBudget
    streams: StreamSlots
    _producer: Any = None
    _engine: VisionEngine | None = None
    _search: SearchIndex | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self) -> VisionEngine:
        """The engine for /api/ask, loaded on first use (a GPU backend may take a while)."""
        with self._lock:
            if self._engine is None:
                from glm45v_engine import load_engine

                self._engine = load_engine(self.settings.engine)
            return self._engine

    def search(self) -> SearchIndex:
        """The search index (its embedder loaded on first use); 503 when search is off or cannot start."""
        with self._lock:
            if self._search is None:
                from sinks.search import open_search

                self._search = open_search(self.store.engine, self.settings.search)
                if self._search is None:
                    raise HTTPException(503, "search is off (search.enabled) or its embedder did not start")
            return self._search

    def producer(self) -> Any:
        """The control-topic producer, created on first write so reads never need a broker."""
        bootstrap = self.settings.bus.bootstrap
        if not bootstrap:
            raise HTTPException(
                503,
                "writes need a Kafka broker: this API was started without bus.bootstrap "
                "(set SIGHTLINE_BUS__BOOTSTRAP or use `sightline up`); reads still work",
            )
        with self._lock:
            if self._producer is None:
                from bus.kafka import Producer

                self._producer = Producer(bootstrap, client_id="sightline-api")
            return self._producer

    def publish_control(self, msg: ControlMessage) -> None:
        """Control topic first (the source of truth others follow), then the store for read-your-writes."""
        producer = self.producer()
        try:
            producer.send(self.topics.control, msg.key, msg).get(timeout=10)
        except Exception as exc:
            raise HTTPException(503, f"the broker did not accept the change: {type(exc).__name__}") from None
        self.store.write([msg])

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()
        if self._producer is not None:
            self._producer.close()
        self.store.close()


def unprocessable(loc: list[str | int], msg: str, kind: str = "value_error") -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, so clients parse one format."""
    return HTTPException(422, [{"loc": loc, "msg": msg, "type": kind}])


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.sightline
    return state
