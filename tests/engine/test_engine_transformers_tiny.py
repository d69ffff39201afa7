"""The real transformers backend on a tiny random GLM-4.5V-architecture checkpoint, offline, on CPU.

Random weights write random text, so these tests assert the plumbing — preprocessing, prompt
expansion, batching, decoding, parsing, usage and latency — never the content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

from glm45v_engine import Clip, Frame, Grounding, SummaryResult, load_engine
from glm45v_engine.transformers_backend import TransformersEngine
from sightline.testing.tiny_checkpoint import build_tiny_checkpoint

MAX_NEW = 8


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-glm45v"))


@pytest.fixture(scope="module")
def tiny_engine(tiny_dir: Path) -> Iterator[TransformersEngine]:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # a hub lookup would fail here: prove none is needed
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    cfg = {"type": "transformers", "model": str(tiny_dir), "dtype": "float32", "max_new_tokens": MAX_NEW}
    engine = load_engine(cfg)
    assert isinstance(engine, TransformersEngine)
    yield engine
    mp.undo()


def image(seed: int, w: int = 320, h: int = 240) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def expected_image_tokens(tiny_dir: Path, img: np.ndarray) -> int:
    from PIL import Image
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

    proc = Glm4vImageProcessorPil.from_pretrained(tiny_dir)
    grid = proc(images=[Image.fromarray(img[..., ::-1])], return_tensors="pt")["image_grid_thw"][0]
    return int(grid.prod()) // 4


def test_one_image_and_concurrent_frames_batched(tiny_engine: TransformersEngine, tiny_dir: Path) -> None:
    frames = [Frame(image=image(i), camera_id=f"cam{i}") for i in range(3)]

    async def go() -> list[list[Grounding]]:
        # three cameras asking at once: the micro-batcher turns them into one generate call
        return list(await asyncio.gather(*(tiny_engine.ground([f], "people") for f in frames)))

    results = [g for [g] in asyncio.run(go())]
    assert tiny_engine.preprocessing in ("pil_manual", "auto_processor")
    img_tokens = expected_image_tokens(tiny_dir, frames[0].image)
    for g, f in zip(results, frames, strict=True):
        assert g.image_size == f.size
        assert 0 < g.usage.tokens_out <= MAX_NEW
        assert g.usage.tokens_in > img_tokens  # image placeholders expanded, plus the prompt text
        assert g.latency_ms > 0 and isinstance(g.raw_text, str)
        for b in g.boxes:  # random text rarely has boxes; if it does they must be valid
            x1, y1, x2, y2 = b.bbox
            assert 0 <= x1 < x2 <= f.size[0] and 0 <= y1 < y2 <= f.size[1]
    assert len({g.latency_ms for g in results}) == 1, "the three frames should share one generate call"
    assert tiny_engine.stats.calls >= 3 and tiny_engine.stats.tokens_out >= 3


def test_short_clip_summary(tiny_engine: TransformersEngine) -> None:
    clip = Clip(frames=tuple(Frame(image=image(10 + i, 224, 168), pts_s=5.0 + i) for i in range(3)))
    s = asyncio.run(tiny_engine.summarize(clip, "What happens?", thinking=True))
    assert isinstance(s, SummaryResult)
    assert 0 < s.usage.tokens_out <= MAX_NEW and s.usage.tokens_in > 3 * 20
    assert all(seg.start_s <= seg.end_s for seg in s.segments)


def test_prompt_template_and_thinking_switch(tiny_engine: TransformersEngine) -> None:
    loaded = tiny_engine._load()
    text_off = loaded.prompt_text([None, "find people"], thinking=False)
    text_on = loaded.prompt_text([None, "find people"], thinking=True)
    assert text_off.count("<|image|>") == 1 and "<|begin_of_image|><|image|><|end_of_image|>" in text_off
    assert text_off.endswith("<think></think>\n") and not text_on.endswith("<think></think>\n")
