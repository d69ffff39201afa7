"""GLM-4.5V behind any OpenAI-compatible server: vLLM, SGLang or the Z.AI platform.

One frame per request (the server batches concurrent requests itself), bounded by a semaphore.
Frames go as downscaled JPEG data URLs; GLM answers in 0–1000 coordinates of what it saw, which
has the original's aspect ratio, so boxes map straight back to ORIGINAL pixels. Clips go as a
`video_url` MP4 when the server takes it, else as timestamped frames. Transient failures (5xx,
429, timeouts, dropped connections, malformed bodies) are retried with backoff; a circuit breaker
stops hammering a sick server; giving up raises `EngineError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from configs.engine import OpenAIEngineConfig
from glm45v_engine import accounting, media, prompts
from glm45v_engine.openai_protocol import Refused, Retryable, json_object, message, raise_for_status, read_sse
from glm45v_engine.parsing import parse_response, parse_summary
from glm45v_engine.resilience import BreakerState, CircuitBreaker, backoff_delay
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
)

log = logging.getLogger("sightline.engine.openai")


@dataclass(frozen=True)
class Reply:
    """One completed chat call: raw text, separate reasoning (if the server split it), usage."""

    content: str
    reasoning: str | None
    usage: Usage
    latency_ms: float
    model: str


class OpenAIEngine:
    name = "openai"

    def __init__(self, cfg: OpenAIEngineConfig | None = None) -> None:
        self.cfg = cfg or OpenAIEngineConfig()
        self.model = self.cfg.model  # replaced by what the server reports
        self.stats = EngineStats()
        self.breaker = CircuitBreaker(self.cfg.breaker_failures, self.cfg.breaker_reset_s)
        # zai: the platform takes video by URL, not as an uploaded data URL, so clips go as frames.
        self.video_ok: bool = self.cfg.video_mode == "video_url" or (
            self.cfg.video_mode == "auto" and self.cfg.flavor != "zai"
        )
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- public API ---------------------------------------------------------------------------

    async def ground(
        self, frames: Sequence[Frame], query: str, *, thinking: bool | None = None
    ) -> list[Grounding]:
        thinking = self.cfg.thinking if thinking is None else thinking
        return list(await asyncio.gather(*(self._ground_one(f, query, thinking) for f in frames)))

    async def summarize(self, clip: Clip, prompt: str, *, thinking: bool | None = None) -> SummaryResult:
        thinking = self.cfg.thinking if thinking is None else thinking
        as_video = self.video_ok
        if as_video:
            try:
                return await self._summarize(clip, prompt, thinking, as_video=True)
            except Refused as exc:
                if self.cfg.video_mode == "video_url":
                    raise EngineError(f"server refused the video clip: {exc}", engine=self.name) from None
                log.warning("server refused video_url (%s); sending clips as frames from now on", exc.status)
                self.video_ok = False
        try:
            return await self._summarize(clip, prompt, thinking, as_video=False)
        except Refused as exc:
            raise EngineError(f"server refused the request ({exc.status}): {exc}", engine=self.name) from None

    async def ask(
        self, media_in: Sequence[Frame] | Clip, prompt: str, *, thinking: bool | None = None
    ) -> Answer:
        thinking = self.cfg.thinking if thinking is None else thinking
        frames = list(media_in.frames if isinstance(media_in, Clip) else media_in)
        # No frames is a text-only question (history questions over stored events whose
        # hits have no snapshot); the chat API and GLM-4.5V take those as they are.
        parts, sizes = self._frame_parts(
            media.subsample(frames, self.cfg.max_clip_frames), captions=len(frames) > 1
        )
        reply = await self._call_checked(
            [*parts, _text(prompts.ask_prompt(prompt))], thinking, image_sizes=sizes
        )
        parsed = parse_response(reply.content, image_size=frames[-1].size if frames else (1000, 1000))
        return Answer(
            text=parsed.answer,
            thinking=_join(reply.reasoning, parsed.thinking),
            boxes=parsed.boxes,
            raw_text=reply.content,
            usage=reply.usage,
            latency_ms=reply.latency_ms,
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        # A client made in another (finished) event loop cannot be closed from this one; drop it.
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()

    # --- requests -----------------------------------------------------------------------------

    async def _ground_one(self, frame: Frame, query: str, thinking: bool) -> Grounding:
        parts, sizes = self._frame_parts([frame], captions=False)
        parts.append(_text(prompts.grounding_prompt(query)))
        reply = await self._call_checked(parts, thinking, image_sizes=sizes, camera_id=frame.camera_id)
        parsed = parse_response(reply.content, image_size=frame.size)
        boxes = tuple(Box(label=b.label or query, bbox=b.bbox, score=b.score) for b in parsed.boxes)
        return Grounding(
            boxes=boxes,
            image_size=frame.size,
            raw_text=reply.content,
            thinking=_join(reply.reasoning, parsed.thinking),
            usage=reply.usage,
            latency_ms=reply.latency_ms,
            unreadable=parsed.unreadable,
        )

    async def _summarize(self, clip: Clip, prompt: str, thinking: bool, *, as_video: bool) -> SummaryResult:
        frames = media.subsample(clip.frames, self.cfg.max_clip_frames)
        if as_video:
            fps = media.clip_fps(frames)
            mp4 = await asyncio.to_thread(media.encode_mp4, frames, self.cfg.max_image_side, fps)
            duration = len(frames) / fps
            # A video's frames are merged in temporal pairs: one pair costs what one image does.
            size = media.fit_size(*frames[0].size, self.cfg.max_image_side)
            sizes = [size] * ((len(frames) + 1) // 2)
            parts: list[dict[str, Any]] = [
                {"type": "video_url", "video_url": {"url": media.data_url(mp4, "video/mp4")}},
                _text(prompts.summary_prompt(prompt, 0.0, duration)),
            ]
            offset = clip.start_s  # the model counts from the start of the video it saw
        else:
            ts = [f.pts_s or 0.0 for f in frames]
            framed, sizes = self._frame_parts(frames, captions=True)
            parts = [_text(prompts.frames_preamble(ts)), *framed]
            parts.append(_text(prompts.summary_prompt(prompt, clip.start_s, clip.end_s)))
            offset = 0.0
        reply = await self._call(parts, thinking, image_sizes=sizes, camera_id=clip.camera_id)
        parsed = parse_summary(reply.content, reply.reasoning)
        segments = tuple(
            TimedSegment(s.start_s + offset, s.end_s + offset, s.description) for s in parsed.segments
        )
        return SummaryResult(
            text=parsed.text,
            segments=segments,
            thinking=parsed.thinking,
            raw_text=reply.content,
            usage=reply.usage,
            latency_ms=reply.latency_ms,
        )

    def _frame_parts(
        self, frames: Sequence[Frame], *, captions: bool
    ) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
        """The image parts as sent, and the (w, h) of each image sent (for the token count)."""
        parts: list[dict[str, Any]] = []
        sizes: list[tuple[int, int]] = []
        for f in frames:
            jpeg, size = media.frame_jpeg(f, self.cfg.max_image_side, self.cfg.jpeg_quality)
            if captions:
                parts.append(_text(prompts.FRAME_CAPTION.format(t=f.pts_s or 0.0)))
            parts.append({"type": "image_url", "image_url": {"url": media.data_url(jpeg, "image/jpeg")}})
            sizes.append(size)
        return parts, sizes

    @staticmethod
    def expected_prompt_tokens(
        parts: Sequence[dict[str, Any]], image_sizes: Sequence[tuple[int, int]]
    ) -> int:
        texts = [str(p.get("text", "")) for p in parts if p.get("type") == "text"]
        return accounting.prompt_tokens(image_sizes, texts)

    def request_body(self, parts: list[dict[str, Any]], thinking: bool) -> dict[str, Any]:
        """The chat request exactly as sent; the thinking switch depends on the server flavor."""
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": parts}],
            "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
        }
        if self.cfg.flavor == "zai":
            body["thinking"] = {"type": "enabled" if thinking else "disabled"}
        else:  # vLLM and SGLang pass this to GLM's chat template
            body["chat_template_kwargs"] = {"enable_thinking": thinking}
        if self.cfg.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _call_checked(
        self,
        parts: list[dict[str, Any]],
        thinking: bool,
        *,
        image_sizes: Sequence[tuple[int, int]],
        **ctx: Any,
    ) -> Reply:
        try:
            return await self._call(parts, thinking, image_sizes=image_sizes, **ctx)
        except Refused as exc:
            raise EngineError(f"server refused the request ({exc.status}): {exc}", engine=self.name) from None

    async def _call(
        self,
        parts: list[dict[str, Any]],
        thinking: bool,
        *,
        image_sizes: Sequence[tuple[int, int]],
        **ctx: Any,
    ) -> Reply:
        """One chat completion with retries; raises EngineError when giving up, Refused on a 4xx."""
        client, sem = self._resources()
        body = self.request_body(parts, thinking)
        # Known before the call is sent: exact visual tokens of the images as sent, text estimated.
        est_in = self.expected_prompt_tokens(parts, image_sizes)
        last = "no attempt made"
        async with sem:
            for attempt in range(self.cfg.max_retries + 1):
                if not self.breaker.allow():
                    self.stats.error("circuit_open")
                    raise EngineError(
                        f"circuit open after repeated failures at {self.cfg.base_url}; "
                        f"retrying in {self.breaker.retry_in():.1f} s (last: {last})",
                        retryable=True,
                        engine=self.name,
                    )
                t0 = time.perf_counter()
                try:
                    reply = await self._send(client, body, est_in, t0)
                except asyncio.CancelledError:  # the caller gave up on this call (e.g. a prefetch)
                    self.breaker.abandon()
                    raise
                except Retryable as exc:
                    last = f"{exc.kind}: {exc}"
                    self.breaker.failure()
                    self.stats.error(exc.kind)
                    if attempt >= self.cfg.max_retries:
                        break
                    self.stats.retries += 1
                    delay = backoff_delay(attempt, self.cfg.backoff_s, retry_after=exc.retry_after)
                    log.warning(
                        "engine call failed, retrying",
                        extra={**ctx, "attempt": attempt + 1, "kind": exc.kind, "delay_s": round(delay, 3)},
                    )
                    await asyncio.sleep(delay)
                    continue
                except Refused:
                    self.breaker.success()  # the server is alive; the request is the problem
                    self.stats.error("refused")
                    raise
                self.breaker.success()
                self.model = reply.model or self.model
                self.stats.record(reply.usage, reply.latency_ms)
                return reply
        raise EngineError(
            f"GLM server at {self.cfg.base_url} failed {self.cfg.max_retries + 1} time(s); last error {last}",
            retryable=True,
            engine=self.name,
        )

    async def _send(self, client: httpx.AsyncClient, body: dict[str, Any], est_in: int, t0: float) -> Reply:
        try:
            if self.cfg.stream:
                async with client.stream("POST", "/chat/completions", json=body) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        raise_for_status(resp)
                    content, reasoning, usage_body, model = await read_sse(resp)
                    data: dict[str, Any] = {"usage": usage_body, "model": model}
            else:
                resp = await client.post("/chat/completions", json=body)
                raise_for_status(resp)
                data = json_object(resp.content)
                content, reasoning, model = message(data)
        except httpx.TimeoutException as exc:
            raise Retryable(
                "timeout", f"no answer within {self.cfg.timeout_s} s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise Retryable("transport", f"{type(exc).__name__}: {exc}") from exc
        latency = (time.perf_counter() - t0) * 1000
        usage = accounting.usage_from_response(data, self.cfg.prices, est_in=est_in, est_out_text=content)
        return Reply(content, reasoning, usage, latency, str(model or ""))

    def _resources(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The HTTP client and semaphore of the running loop (rebuilt if the engine moves loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._sem is None or self._loop is not loop:
            headers = {"Content-Type": "application/json"}
            key = self.api_key()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            limits = httpx.Limits(max_connections=self.cfg.max_concurrency)
            self._client = httpx.AsyncClient(
                base_url=self.cfg.base_url.rstrip("/"),
                headers=headers,
                timeout=httpx.Timeout(self.cfg.timeout_s),
                limits=limits,
            )
            self._sem = asyncio.Semaphore(self.cfg.max_concurrency)
            self._loop = loop
        return self._client, self._sem

    def api_key(self) -> str | None:
        if self.cfg.api_key:
            return self.cfg.api_key
        names = (
            ("ZAI_API_KEY", "OPENAI_API_KEY")
            if self.cfg.flavor == "zai"
            else ("OPENAI_API_KEY", "ZAI_API_KEY")
        )
        return next((os.environ[n] for n in names if os.environ.get(n)), None)

    @property
    def breaker_state(self) -> BreakerState:
        return self.breaker.state


# --- helpers ---------------------------------------------------------------------------------------


def _text(s: str) -> dict[str, Any]:
    return {"type": "text", "text": s}


def _join(*parts: str | None) -> str | None:
    return "\n".join(p for p in parts if p) or None
