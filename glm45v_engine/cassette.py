"""Record another engine's answers to a JSONL file, or replay them exactly, keyed by the request.

The key is a SHA-256 of what was asked: the operation, the query or prompt, the thinking switch
and the frames' pixels and timestamps. One entry per frame for grounding, so replay does not
depend on how the caller batched frames. Replay returns the recorded raw text, thinking, boxes,
usage and latency unchanged, and fails loudly on a request it has not seen.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from configs.engine import CassetteEngineConfig
from glm45v_engine.parsing import parse_response
from glm45v_engine.types import (
    Answer,
    Box,
    Clip,
    EngineError,
    EngineStats,
    Frame,
    Grounding,
    SummaryResult,
    TimedSegment,
    Usage,
    VisionEngine,
)

FORMAT = "sightline.cassette/1"


def frame_digest(frame: Frame) -> str:
    h = hashlib.sha256()
    h.update(repr((frame.image.shape, frame.pts_s)).encode())
    h.update(frame.image.tobytes())
    return h.hexdigest()


def request_key(op: str, text: str, thinking: bool | None, frames: Sequence[Frame]) -> str:
    payload = json.dumps([FORMAT, op, text, thinking, [frame_digest(f) for f in frames]])
    return hashlib.sha256(payload.encode()).hexdigest()


class CassetteEngine:
    name = "cassette"

    def __init__(self, cfg: CassetteEngineConfig, inner: VisionEngine | None = None) -> None:
        self.cfg = cfg
        self.path = Path(cfg.path)
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()
        elif cfg.mode == "replay":
            raise EngineError(
                f"cassette {self.path} does not exist; record it first (mode: record)", engine=self.name
            )
        self.inner = inner
        if cfg.mode == "record" and inner is None:
            if cfg.inner is None:
                raise EngineError("a recording cassette needs an `inner` engine config", engine=self.name)
            from glm45v_engine.registry import load_engine

            self.inner = load_engine(cfg.inner)
        models = {e.get("model") for e in self._entries.values() if e.get("model")}
        self.model = (
            str(next(iter(models))) if len(models) == 1 else (self.inner.model if self.inner else "mixed")
        )

    def _load(self) -> None:
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._entries[entry["key"]] = entry
            except (ValueError, KeyError, TypeError):
                raise EngineError(
                    f"cassette {self.path}:{n} is not a valid entry", engine=self.name
                ) from None

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries[entry["key"]] = entry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True) + "\n")

    def _lookup(self, key: str, op: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None and self.cfg.mode == "replay":
            self.stats.error("cassette_miss")
            raise EngineError(
                f"cassette {self.path} has no recording of this {op} request (key {key[:12]}); "
                "re-record with mode: record",
                engine=self.name,
            )
        return entry

    def _recorder(self) -> VisionEngine:
        assert self.inner is not None  # guaranteed for mode=record by __init__
        return self.inner

    # --- VisionEngine ---------------------------------------------------------------------------

    async def ground(
        self, frames: Sequence[Frame], query: str, *, thinking: bool | None = None
    ) -> list[Grounding]:
        out = []
        for f in frames:
            key = request_key("ground", query, thinking, [f])
            entry = self._lookup(key, "ground")
            if entry is None:
                [g] = await self._recorder().ground([f], query, **_think(thinking))
                entry = self._record(key, "ground", _grounding_json(g))
            out.append(_grounding(entry["result"]))
            self._count(out[-1].usage, out[-1].latency_ms)
        return out

    async def summarize(self, clip: Clip, prompt: str, *, thinking: bool | None = None) -> SummaryResult:
        key = request_key("summarize", prompt, thinking, clip.frames)
        entry = self._lookup(key, "summarize")
        if entry is None:
            s = await self._recorder().summarize(clip, prompt, **_think(thinking))
            entry = self._record(key, "summarize", _summary_json(s))
        result = _summary(entry["result"])
        self._count(result.usage, result.latency_ms)
        return result

    async def ask(
        self, media: Sequence[Frame] | Clip, prompt: str, *, thinking: bool | None = None
    ) -> Answer:
        frames = media.frames if isinstance(media, Clip) else tuple(media)
        key = request_key("ask", prompt, thinking, frames)
        entry = self._lookup(key, "ask")
        if entry is None:
            a = await self._recorder().ask(media, prompt, **_think(thinking))
            entry = self._record(key, "ask", _answer_json(a))
        result = _answer(entry["result"])
        self._count(result.usage, result.latency_ms)
        return result

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()

    def _record(self, key: str, op: str, result: dict[str, Any]) -> dict[str, Any]:
        inner = self._recorder()
        self.model = inner.model
        entry = {"key": key, "op": op, "engine": inner.name, "model": inner.model, "result": result}
        self._append(entry)
        return entry

    def _count(self, usage: Usage, latency_ms: float) -> None:
        self.stats.record(usage, latency_ms)


def _think(thinking: bool | None) -> dict[str, bool]:
    """Pass the switch only when the caller set it, so the inner engine's config default applies."""
    return {} if thinking is None else {"thinking": thinking}


# --- (de)serialisation: plain JSON, floats round-trip exactly -----------------------------------


def _usage_json(u: Usage) -> dict[str, Any]:
    return {
        "tokens_in": u.tokens_in,
        "tokens_out": u.tokens_out,
        "cost": u.cost,
        "estimated": u.estimated,
        "expected_in": u.expected_in,
    }


def _usage(d: dict[str, Any]) -> Usage:
    return Usage(
        int(d["tokens_in"]),
        int(d["tokens_out"]),
        float(d["cost"]),
        bool(d.get("estimated", False)),
        int(d.get("expected_in", 0)),  # cassettes recorded before the expectation was kept
    )


def _boxes_json(boxes: Sequence[Box]) -> list[dict[str, Any]]:
    return [{"label": b.label, "bbox": list(b.bbox), "score": b.score} for b in boxes]


def _boxes(items: list[dict[str, Any]]) -> tuple[Box, ...]:
    return tuple(Box(label=b["label"], bbox=tuple(b["bbox"]), score=b["score"]) for b in items)


def _grounding_json(g: Grounding) -> dict[str, Any]:
    return {
        "boxes": _boxes_json(g.boxes),
        "image_size": list(g.image_size),
        "raw_text": g.raw_text,
        "thinking": g.thinking,
        "usage": _usage_json(g.usage),
        "latency_ms": g.latency_ms,
        "unreadable": g.unreadable,
    }


def _grounding(d: dict[str, Any]) -> Grounding:
    w, h = d["image_size"]
    return Grounding(
        boxes=_boxes(d["boxes"]),
        image_size=(int(w), int(h)),
        raw_text=d["raw_text"],
        thinking=d["thinking"],
        usage=_usage(d["usage"]),
        latency_ms=float(d["latency_ms"]),
        # Cassettes recorded before the flag existed: judge the recorded text as the backend would.
        unreadable=bool(d["unreadable"])
        if "unreadable" in d
        else parse_response(d["raw_text"], (w, h)).unreadable,
    )


def _summary_json(s: SummaryResult) -> dict[str, Any]:
    return {
        "text": s.text,
        "segments": [[x.start_s, x.end_s, x.description] for x in s.segments],
        "thinking": s.thinking,
        "raw_text": s.raw_text,
        "usage": _usage_json(s.usage),
        "latency_ms": s.latency_ms,
    }


def _summary(d: dict[str, Any]) -> SummaryResult:
    return SummaryResult(
        text=d["text"],
        segments=tuple(TimedSegment(float(a), float(b), str(c)) for a, b, c in d["segments"]),
        thinking=d["thinking"],
        raw_text=d["raw_text"],
        usage=_usage(d["usage"]),
        latency_ms=float(d["latency_ms"]),
    )


def _answer_json(a: Answer) -> dict[str, Any]:
    return {
        "text": a.text,
        "thinking": a.thinking,
        "boxes": _boxes_json(a.boxes),
        "raw_text": a.raw_text,
        "usage": _usage_json(a.usage),
        "latency_ms": a.latency_ms,
    }


def _answer(d: dict[str, Any]) -> Answer:
    return Answer(
        text=d["text"],
        thinking=d["thinking"],
        boxes=_boxes(d["boxes"]),
        raw_text=d["raw_text"],
        usage=_usage(d["usage"]),
        latency_ms=float(d["latency_ms"]),
    )
