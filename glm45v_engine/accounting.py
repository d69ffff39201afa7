"""Tokens and money per call, and the engine counters as Prometheus samples.

Usage comes from the server's `usage` block when it sends one; otherwise it is estimated
locally (and marked so): GLM-4.5V's vision tower uses 14 px patches merged 2×2, so one image
token covers 28×28 px of the resized image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from configs.engine import Prices
from glm45v_engine.types import EngineStats, Usage

PX_PER_IMAGE_TOKEN = 28
CHARS_PER_TOKEN = 4  # rough for English/JSON; only used when the server reports nothing


def cost(tokens_in: int, tokens_out: int, prices: Prices) -> float:
    return tokens_in / 1e6 * prices.input_per_m + tokens_out / 1e6 * prices.output_per_m


def make_usage(tokens_in: int, tokens_out: int, prices: Prices, *, estimated: bool = False) -> Usage:
    return Usage(tokens_in, tokens_out, cost(tokens_in, tokens_out, prices), estimated=estimated)


def usage_from_response(
    body: Mapping[str, Any] | None, prices: Prices, *, est_in: int, est_out_text: str
) -> Usage:
    """The `usage` block of an OpenAI-style response, or a local estimate when it is missing/bad."""
    u = body.get("usage") if isinstance(body, Mapping) else None
    if isinstance(u, Mapping):
        pin, pout = u.get("prompt_tokens"), u.get("completion_tokens")
        if isinstance(pin, int) and isinstance(pout, int) and pin >= 0 and pout >= 0:
            return make_usage(pin, pout, prices)
    return make_usage(est_in, estimate_text_tokens(est_out_text), prices, estimated=True)


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_image_tokens(width: int, height: int) -> int:
    return max(1, math.ceil(width / PX_PER_IMAGE_TOKEN) * math.ceil(height / PX_PER_IMAGE_TOKEN))


def stats_samples(
    engine_name: str, model: str, stats: EngineStats
) -> Iterator[tuple[str, dict[str, str], float]]:
    """(metric name, labels, value) for each counter, for whichever metrics exporter the caller uses."""
    labels = {"engine": engine_name, "model": model}
    yield "sightline_engine_calls_total", labels, float(stats.calls)
    yield "sightline_engine_errors_total", labels, float(stats.errors)
    yield "sightline_engine_retries_total", labels, float(stats.retries)
    yield "sightline_engine_tokens_in_total", labels, float(stats.tokens_in)
    yield "sightline_engine_tokens_out_total", labels, float(stats.tokens_out)
    yield "sightline_engine_cost_total", labels, float(stats.cost)
    yield "sightline_engine_latency_seconds_total", labels, stats.latency_ms_total / 1000.0
    for kind, n in sorted(stats.by_error.items()):
        yield "sightline_engine_errors_by_kind_total", {**labels, "kind": kind}, float(n)


class EngineCollector:
    """A prometheus_client collector over one engine's stats: `REGISTRY.register(EngineCollector(e))`."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        families: dict[str, Any] = {}
        for name, labels, value in stats_samples(self.engine.name, self.engine.model, self.engine.stats):
            base = name.removesuffix("_total")
            fam = families.get(base)
            if fam is None:
                fam = families[base] = CounterMetricFamily(base, base.replace("_", " "), labels=list(labels))
            fam.add_metric(list(labels.values()), value)
        yield from families.values()
