"""/healthz (alive), /readyz (broker, store, engine reachable) and /metrics (Prometheus)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.concurrency import run_in_threadpool

from dashboard.auth import viewer
from dashboard.state import AppState, get_state

router = APIRouter(tags=["health"])
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _tcp(hostport: str, timeout_s: float = 1.0) -> None:
    host, _, port = hostport.strip().rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
        pass


def _check_store(state: AppState) -> str:
    state.store.ping()
    return "ok"


def _check_broker(state: AppState) -> str:
    bootstrap = state.settings.bus.bootstrap
    if not bootstrap:
        return "not configured (reads only)"
    errors = []
    for hp in bootstrap.split(","):
        try:
            _tcp(hp)
            return "ok"
        except (OSError, ValueError) as exc:
            errors.append(f"{hp}: {type(exc).__name__}")
    raise ConnectionError("; ".join(errors))


def _check_engine(state: AppState) -> str:
    engine = state.engine()
    base_url = getattr(state.settings.engine, "base_url", None)
    if base_url:  # a remote model server: is it listening?
        parts = urlsplit(base_url)
        _tcp(f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}", 2.0)
    return f"ok ({engine.name})"


@router.get("/healthz")
async def healthz() -> dict[str, str]:  # async: no worker thread needed, so a busy pool cannot delay it
    """Liveness: the process answers. See /readyz for its dependencies."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(state: Annotated[AppState, Depends(get_state)]) -> JSONResponse:
    """Ready only when the store, the broker (if configured) and the engine are reachable."""
    checks: dict[str, str] = {}
    ok = True
    for name, check in (("store", _check_store), ("broker", _check_broker), ("engine", _check_engine)):
        try:
            checks[name] = await run_in_threadpool(check, state)
        except Exception as exc:  # any failure means "not ready"; the kind is enough for the body
            ok, checks[name] = False, f"unreachable: {type(exc).__name__}"
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


class StoreCollector:
    """Scrape-time gauges from the store: row counts and every component's latest reported state."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = GaugeMetricFamily("sightline_store_rows", "Rows per store table", labels=["table"])
        for table, n in self.state.store.counts().items():
            rows.add_metric([table], n)
        yield rows
        fps_in = GaugeMetricFamily("sightline_fps_in", "Frames per second read", labels=["component", "id"])
        fps_out = GaugeMetricFamily(
            "sightline_fps_out", "Frames per second passed on", labels=["component", "id"]
        )
        lag = GaugeMetricFamily("sightline_lag_seconds", "Processing lag", labels=["component", "id"])
        drops = GaugeMetricFamily(
            "sightline_drops", "Dropped items by reason", labels=["component", "id", "reason"]
        )
        up = GaugeMetricFamily(
            "sightline_component_up",
            "1 when the component's last state is healthy",
            labels=["component", "id", "state"],
        )
        for s in self.state.store.statuses():
            key = [s["component"], s["id"]]
            fps_in.add_metric(key, s.get("fps_in", 0.0))
            fps_out.add_metric(key, s.get("fps_out", 0.0))
            lag.add_metric(key, s.get("lag_s", 0.0))
            for reason, n in (s.get("drops") or {}).items():
                drops.add_metric([*key, reason], n)
            up.add_metric([*key, s["state"]], 1.0 if s["state"] in ("streaming", "running") else 0.0)
        yield from (fps_in, fps_out, lag, drops, up)
        # Each process's own counters (engine calls, tokens, cost, events, lag) are on its own
        # /metrics (`lifecycle.metrics`); re-exporting the status topic's counters here as one
        # generic gauge family hid their types and units.


class Metrics:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self, state: AppState) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sightline_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "sightline_http_request_seconds", "HTTP latency", ["route"], registry=self.registry
        )
        self.ask_tokens = Counter(
            "sightline_ask_tokens", "Tokens used by /api/ask", ["direction"], registry=self.registry
        )
        self.registry.register(StoreCollector(state))

    def observe(self, request: Request, status: int, started: float) -> None:
        route: Any = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        # Label values from closed sets only: any string is a valid HTTP method to the server, and
        # 200 requests with 15 KB methods grew /metrics to 6.3 MB (and the process, for good).
        method = request.method if request.method in HTTP_METHODS else "other"
        self.requests.labels(method, path, str(status)).inc()
        self.latency.labels(path).observe(time.perf_counter() - started)


@router.get(
    "/metrics",
    dependencies=[viewer],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    m: Metrics = request.app.state.metrics
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
