"""Tokens and money per call, and the engine counters as Prometheus samples.

Visual tokens are computed exactly as GLM-4.5V's image processor (`Glm4vImageProcessor` in
transformers, `smart_resize`) computes them: the image is resized so both sides are multiples of
28 px (14 px patches merged 2×2), its area kept within [min_pixels, max_pixels] (counted for the
two temporal copies of a still image), and each 28×28 px cell is one token. Written here rather
than imported because the engine must know a call's cost before it is sent, on hosts without
transformers; `tests/engine/test_engine_tokens.py` checks it against transformers for many sizes.
Text tokens cannot be exact without GLM's tokenizer (not shipped), so they stay an estimate.

Usage comes from the server's `usage` block when it sends one; otherwise the local expectation
is used (and marked `estimated`). Either way the expectation is kept beside it (`Usage.expected_in`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from configs.engine import Prices
from glm45v_engine.types import EngineStats, Usage

PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2  # a still image is repeated to fill one temporal patch
PX_PER_IMAGE_TOKEN = PATCH_SIZE * MERGE_SIZE  # 28
# transformers' Glm4vImageProcessor defaults (size.shortest_edge / size.longest_edge)
MIN_PIXELS = 112 * 112
MAX_PIXELS = 28 * 28 * 15000
IMAGE_WRAPPER_TOKENS = 2  # <|begin_of_image|> … <|end_of_image|> around the image tokens
TEMPLATE_TOKENS = 6  # [gMASK]<sop><|user|>\n … <|assistant|>\n of the chat template
CHARS_PER_TOKEN = 4  # rough for English/JSON; GLM's tokenizer is not available offline


def cost(tokens_in: int, tokens_out: int, prices: Prices) -> float:
    return tokens_in / 1e6 * prices.input_per_m + tokens_out / 1e6 * prices.output_per_m


def make_usage(
    tokens_in: int, tokens_out: int, prices: Prices, *, estimated: bool = False, expected_in: int = 0
) -> Usage:
    return Usage(
        tokens_in,
        tokens_out,
        cost(tokens_in, tokens_out, prices),
        estimated=estimated,
        expected_in=expected_in,
    )


def usage_from_response(
    body: Mapping[str, Any] | None, prices: Prices, *, est_in: int, est_out_text: str
) -> Usage:
    """The `usage` block of an OpenAI-style response, or a local estimate when it is missing/bad."""
    u = body.get("usage") if isinstance(body, Mapping) else None
    if isinstance(u, Mapping):
        pin, pout = u.get("prompt_tokens"), u.get("completion_tokens")
        if isinstance(pin, int) and isinstance(pout, int) and pin >= 0 and pout >= 0:
            return make_usage(pin, pout, prices, expected_in=est_in)
    return make_usage(est_in, estimate_text_tokens(est_out_text), prices, estimated=True, expected_in=est_in)


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def smart_resize(
    width: int, height: int, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """(w, h) GLM-4.5V's image processor resizes an image of (width, height) to.

    The same arithmetic as transformers' `glm4v.image_processing_glm4v.smart_resize` with
    num_frames = temporal factor = 2 (how the processor calls it for a still image).
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    f, t = PX_PER_IMAGE_TOKEN, TEMPORAL_PATCH_SIZE
    h, w = height, width
    if h < f or w < f:
        scale = max(f / h, f / w)
        h, w = int(h * scale), int(w * scale)
    if max(h, w) / min(h, w) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(h, w) / min(h, w)}")
    h_bar, w_bar = round(h / f) * f, round(w / f) * f
    if t * h_bar * w_bar > max_pixels:
        beta = math.sqrt((t * h * w) / max_pixels)
        h_bar = max(f, math.floor(h / beta / f) * f)
        w_bar = max(f, math.floor(w / beta / f) * f)
    elif t * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (t * h * w))
        h_bar = math.ceil(h * beta / f) * f
        w_bar = math.ceil(w * beta / f) * f
    return w_bar, h_bar


def image_tokens(
    width: int, height: int, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> int:
    """Visual tokens one image of (width, height) costs: its 28×28 px cells after `smart_resize`."""
    w, h = smart_resize(width, height, min_pixels=min_pixels, max_pixels=max_pixels)
    return (w // PX_PER_IMAGE_TOKEN) * (h // PX_PER_IMAGE_TOKEN)


def estimate_image_tokens(width: int, height: int) -> int:
    """Kept for callers that only know a size: the exact count, never below one token."""
    return max(1, image_tokens(width, height))


def prompt_tokens(image_sizes: Sequence[tuple[int, int]], texts: Sequence[str]) -> int:
    """Expected prompt tokens of one chat call: exact visual tokens, estimated text, template."""
    visual = sum(image_tokens(w, h) + IMAGE_WRAPPER_TOKENS for w, h in image_sizes)
    return visual + sum(estimate_text_tokens(t) for t in texts) + TEMPLATE_TOKENS


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
    yield "sightline_engine_tokens_in_expected_total", labels, float(stats.tokens_in_expected)
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
