"""GLM-4.5V on local hardware through transformers, batching several frames into one `generate`.

Heavy imports (torch, transformers) happen on first use. Two preprocessing paths, chosen at load:
- `AutoProcessor` (the official path; needs torchvision, as on a GPU host);
- without torchvision: `Glm4vImageProcessorPil` plus the prompt built here — the chat template
  is applied and each `<|image|>` is expanded to as many image tokens as the image has merged
  patches (grid t·h·w / merge²), which is what the official processor does.
Concurrent `ground` calls (several cameras) are gathered by a micro-batcher into one padded
`generate` of up to `max_batch` prompts. Clips go as timestamped frames (as the openai backend's
frames mode), so both paths handle them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from configs.engine import TransformersEngineConfig
from glm45v_engine import accounting, media, prompts
from glm45v_engine.parsing import parse_response, parse_summary
from glm45v_engine.types import (
    Answer,
    Box,
    Clip,
    EngineError,
    EngineStats,
    Frame,
    Grounding,
    Image,
    SummaryResult,
    Usage,
)

log = logging.getLogger("sightline.engine.transformers")
BATCH_WAIT_S = 0.01  # how long the batcher waits for more concurrent requests to join
QUEUE_BATCHES = 8  # pending requests beyond this many batches make callers wait


@dataclass(frozen=True)
class Generated:
    text: str
    usage: Usage
    latency_ms: float
    batch_size: int


@dataclass
class _Job:
    images: list[Image]  # BGR, in prompt order
    text_parts: list[str | None]  # None marks where each image goes
    thinking: bool
    future: asyncio.Future[Generated] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class TransformersEngine:
    name = "transformers"

    def __init__(self, cfg: TransformersEngineConfig | None = None) -> None:
        self.cfg = cfg or TransformersEngineConfig()
        self.model = self.cfg.model
        self.stats = EngineStats()
        self.preprocessing = "unloaded"  # "auto_processor" | "pil_manual" once loaded
        self._loaded: Any = None
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None

    # --- VisionEngine -----------------------------------------------------------------------------

    async def ground(
        self, frames: Sequence[Frame], query: str, *, thinking: bool | None = None
    ) -> list[Grounding]:
        thinking = self.cfg.thinking if thinking is None else thinking
        text = prompts.grounding_prompt(query)
        results = await asyncio.gather(
            *(
                self._submit([media.downscale(f.image, self._max_side())], [None, text], thinking)
                for f in frames
            )
        )
        out = []
        for f, gen in zip(frames, results, strict=True):
            parsed = parse_response(gen.text, image_size=f.size)
            boxes = tuple(Box(label=b.label or query, bbox=b.bbox) for b in parsed.boxes)
            out.append(
                Grounding(
                    boxes,
                    f.size,
                    gen.text,
                    parsed.thinking,
                    gen.usage,
                    gen.latency_ms,
                    unreadable=parsed.unreadable,
                )
            )
        return out

    async def summarize(self, clip: Clip, prompt: str, *, thinking: bool | None = None) -> SummaryResult:
        thinking = self.cfg.thinking if thinking is None else thinking
        frames = media.subsample(clip.frames, self.cfg.max_clip_frames)
        parts: list[str | None] = [prompts.frames_preamble([f.pts_s or 0.0 for f in frames])]
        for f in frames:
            parts += [prompts.FRAME_CAPTION.format(t=f.pts_s or 0.0), None]
        parts.append(prompts.summary_prompt(prompt, clip.start_s, clip.end_s))
        gen = await self._submit(
            [media.downscale(f.image, self._max_side()) for f in frames], parts, thinking
        )
        parsed = parse_summary(gen.text)
        return SummaryResult(
            parsed.text, parsed.segments, parsed.thinking, gen.text, gen.usage, gen.latency_ms
        )

    async def ask(
        self, media_in: Sequence[Frame] | Clip, prompt: str, *, thinking: bool | None = None
    ) -> Answer:
        thinking = self.cfg.thinking if thinking is None else thinking
        frames = list(media_in.frames if isinstance(media_in, Clip) else media_in)
        if not frames:
            raise EngineError("ask needs at least one frame", engine=self.name)
        frames = media.subsample(frames, self.cfg.max_clip_frames)
        parts: list[str | None] = [None] * len(frames) + [prompts.ask_prompt(prompt)]
        gen = await self._submit(
            [media.downscale(f.image, self._max_side()) for f in frames], parts, thinking
        )
        parsed = parse_response(gen.text, image_size=frames[-1].size)
        return Answer(parsed.answer, parsed.thinking, parsed.boxes, gen.text, gen.usage, gen.latency_ms)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._queue = None

    def _max_side(self) -> int:
        return self.cfg.max_image_side

    # --- micro-batching -----------------------------------------------------------------------------

    async def _submit(self, images: list[Image], parts: list[str | None], thinking: bool) -> Generated:
        if self._queue is None or self._worker is None or self._worker.done():
            # Bounded; policy "block": a caller beyond the bound waits (backpressure), nothing is dropped.
            self._queue = asyncio.Queue(maxsize=self.cfg.max_batch * QUEUE_BATCHES)
            self._worker = asyncio.get_running_loop().create_task(self._batch_loop(self._queue))
        job = _Job(images, parts, thinking)
        await self._queue.put(job)
        return await job.future

    async def _batch_loop(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < self.cfg.max_batch:
                timeout = deadline - time.monotonic()
                try:
                    batch.append(
                        queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(queue.get(), timeout)
                    )
                except (TimeoutError, asyncio.QueueEmpty):
                    break
            try:
                results = await asyncio.to_thread(self._generate_batch, batch)
            except Exception as exc:  # one failed batch fails its callers, not the worker
                self.stats.error(type(exc).__name__)
                err = EngineError(f"local generate failed: {exc}", engine=self.name)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            for job, res in zip(batch, results, strict=True):
                self.stats.record(res.usage, res.latency_ms)
                if not job.future.done():
                    job.future.set_result(res)

    # --- model ---------------------------------------------------------------------------------------

    def _load(self) -> Any:
        with self._load_lock:
            if self._loaded is None:
                self._loaded = _Loaded.load(self.cfg)
                self.preprocessing = self._loaded.path
                log.info("loaded %s (%s preprocessing)", self.cfg.model, self.preprocessing)
            return self._loaded

    def _generate_batch(self, jobs: list[_Job]) -> list[Generated]:
        loaded = self._load()
        with self._gen_lock:
            t0 = time.perf_counter()
            texts, tokens_in, tokens_out = loaded.generate(jobs, self.cfg)
            ms = (time.perf_counter() - t0) * 1000
        return [
            Generated(t, accounting.make_usage(i, o, self.cfg.prices), ms, len(jobs))
            for t, i, o in zip(texts, tokens_in, tokens_out, strict=True)
        ]


def _has_accelerate() -> bool:
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


class _Loaded:
    """The model, tokenizer and image preprocessing, and one padded batch `generate`."""

    def __init__(self, model: Any, tokenizer: Any, image_processor: Any, processor: Any, path: str) -> None:
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.processor, self.path = processor, path

    @classmethod
    def load(cls, cfg: TransformersEngineConfig) -> _Loaded:
        import torch
        from transformers import AutoTokenizer, Glm4vMoeForConditionalGeneration

        dtype = {
            "auto": "auto",
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
            "float32": torch.float32,
        }
        kwargs: dict[str, Any] = {"dtype": dtype[cfg.dtype]}
        device_map: str | None = None if cfg.device_map == "none" else cfg.device_map
        if device_map == "auto" and not _has_accelerate():
            # device_map="auto" needs accelerate; without it use one device (a GPU if there is one).
            device_map = None
            log.info("accelerate not installed: loading on one device instead of device_map=auto")
        if device_map is not None:
            kwargs["device_map"] = device_map
        model: Any = Glm4vMoeForConditionalGeneration.from_pretrained(cfg.model, **kwargs)
        model.eval()
        if device_map is None and cfg.device_map == "auto" and torch.cuda.is_available():
            model = model.to("cuda")
        processor = None
        try:
            import importlib

            importlib.import_module("torchvision")  # the official processor's backends need it
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(cfg.model)  # type: ignore[no-untyped-call]
            tokenizer, image_processor, path = (
                processor.tokenizer,
                processor.image_processor,
                "auto_processor",
            )
        except Exception as exc:  # no torchvision (or a broken one): build prompts ourselves
            from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

            log.info("AutoProcessor unavailable (%s); using Glm4vImageProcessorPil", type(exc).__name__)
            tokenizer = AutoTokenizer.from_pretrained(cfg.model)
            image_processor = Glm4vImageProcessorPil.from_pretrained(cfg.model)
            path = "pil_manual"
        tokenizer.padding_side = "left"  # decoder-only batch generation pads on the left
        return cls(model, tokenizer, image_processor, processor, path)

    def prompt_text(self, text_parts: Sequence[str | None], thinking: bool) -> str:
        """The chat-templated prompt; `None` parts are images. Thinking off = the template's empty think."""
        content: list[dict[str, Any]] = [
            {"type": "image"} if p is None else {"type": "text", "text": p} for p in text_parts
        ]
        messages = [{"role": "user", "content": content}]
        templater = self.processor if self.processor is not None else self.tokenizer
        text: str = templater.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=thinking
        )
        return text

    def generate(
        self, jobs: list[_Job], cfg: TransformersEngineConfig
    ) -> tuple[list[str], list[int], list[int]]:
        import torch
        from PIL import Image as PILImage

        pil = [PILImage.fromarray(img[..., ::-1].copy()) for job in jobs for img in job.images]
        vision = self.image_processor(images=pil, return_tensors="pt") if pil else {}
        grids = vision.get("image_grid_thw")
        merge = int(getattr(self.image_processor, "merge_size", 2))
        counts = [int(g.prod()) // merge**2 for g in grids] if grids is not None else []
        prompts_text, k = [], 0
        for job in jobs:
            text = self.prompt_text(job.text_parts, job.thinking)
            pieces = text.split("<|image|>")
            expanded = pieces[0]
            for piece in pieces[1:]:  # <|image|> → one placeholder per merged patch of that image
                expanded += "<|image|>" * counts[k] + piece
                k += 1
            prompts_text.append(expanded)
        enc = self.tokenizer(prompts_text, return_tensors="pt", padding=True, add_special_tokens=False)
        device = self.model.device
        inputs: dict[str, Any] = {
            "input_ids": enc["input_ids"].to(device),
            "attention_mask": enc["attention_mask"].to(device),
        }
        if pil and grids is not None:
            inputs["pixel_values"] = vision["pixel_values"].to(device=device, dtype=self.model.dtype)
            inputs["image_grid_thw"] = grids.to(device)
        eos = self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=cfg.max_new_tokens, do_sample=False, pad_token_id=eos
            )
        prompt_len = inputs["input_ids"].shape[1]
        texts, t_in, t_out = [], [], []
        for row in range(out.shape[0]):
            new = out[row, prompt_len:].tolist()
            if eos in new:
                new = new[: new.index(eos)]
            texts.append(self.tokenizer.decode(new, skip_special_tokens=False))
            t_in.append(int(inputs["attention_mask"][row].sum()))
            t_out.append(len(new))
        return texts, t_in, t_out
