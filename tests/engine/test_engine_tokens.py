"""Visual-token accounting against GLM-4.5V's own image processor from transformers.

`glm45v_engine.accounting.image_tokens` must count what `Glm4vImageProcessor` produces: the
number of `<|image|>` tokens the processor expands an image to (grid_t·grid_h·grid_w / merge²).
transformers 5 ships the processor in two backends with the same resize rules; the torchvision one
(`Glm4vImageProcessor`) is used when torchvision imports, else the PIL one (`Glm4vImageProcessorPil`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from glm45v_engine import accounting
from glm45v_engine.types import Frame

pytest.importorskip("transformers")

SIZES = [  # (w, h): common camera sizes, odd ones, portrait, very wide, tiny, huge
    (640, 480),
    (1280, 720),
    (1920, 1080),
    (3840, 2160),
    (352, 288),
    (720, 1280),
    (1000, 37),
    (57, 29),
    (20, 500),
    (4096, 4096),
    (333, 777),
    (112, 112),
    (56, 56),
]


def _processor() -> Any:
    try:
        from transformers import Glm4vImageProcessor

        proc = Glm4vImageProcessor()
        proc(images=[np.zeros((64, 64, 3), np.uint8)], return_tensors="np")
        return proc
    except Exception:  # no torchvision (see docs/notes): the PIL backend, same resize rules
        from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

        return Glm4vImageProcessorPil()


@pytest.fixture(scope="module")
def processor() -> Any:
    return _processor()


def _reference_tokens(processor: Any, w: int, h: int) -> tuple[int, tuple[int, int]]:
    img = np.full((h, w, 3), 127, np.uint8)
    out = processor(images=[img], return_tensors="np")
    t, gh, gw = (int(v) for v in np.asarray(out["image_grid_thw"])[0])
    merge = int(processor.merge_size)
    patch = int(processor.patch_size)
    return t * gh * gw // (merge * merge), (gw * patch, gh * patch)


@pytest.mark.parametrize(("w", "h"), SIZES)
def test_image_tokens_match_glm4v_image_processor(processor: Any, w: int, h: int) -> None:
    expected, resized = _reference_tokens(processor, w, h)
    assert accounting.smart_resize(w, h) == resized
    assert accounting.image_tokens(w, h) == expected


def test_processor_defaults_are_ours(processor: Any) -> None:
    size = processor.size
    shortest = size["shortest_edge"] if isinstance(size, dict) else size.shortest_edge
    longest = size["longest_edge"] if isinstance(size, dict) else size.longest_edge
    assert (shortest, longest) == (accounting.MIN_PIXELS, accounting.MAX_PIXELS)
    assert (processor.patch_size, processor.merge_size) == (accounting.PATCH_SIZE, accounting.MERGE_SIZE)


def test_known_figure_640x480_is_391_tokens() -> None:
    # 640x480 -> 644x476 (23x17 cells of 28 px): the figure recorded in the test-environment notes
    assert accounting.smart_resize(640, 480) == (644, 476)
    assert accounting.image_tokens(640, 480) == 391


def test_every_call_records_expected_beside_reported_usage() -> None:
    """The openai backend knows a call's prompt tokens before sending; the server's count is kept beside."""
    from glm45v_engine import load_engine
    from glm45v_engine.openai_backend import OpenAIEngine
    from glm45v_engine.prompts import grounding_prompt
    from sightline.testing.scripted_server import ScriptedServer

    with ScriptedServer() as srv:
        srv.set_scenario({"steps": [{"text": "none"}, {"text": "none", "usage": False}]})
        e = load_engine({"type": "openai", "base_url": srv.base_url, "api_key": "x", "max_image_side": 1280})
        assert isinstance(e, OpenAIEngine)
        img = np.zeros((1080, 1920, 3), np.uint8)

        async def two() -> list[Any]:
            try:
                return [
                    await e.ground([Frame(image=img)], "people"),
                    await e.ground([Frame(image=img)], "people"),
                ]
            finally:
                await e.aclose()

        [[a], [b]] = asyncio.run(two())
    # sent downscaled to 1280x720: 46x26 cells of 28 px after smart_resize (1288x728)
    visual = accounting.image_tokens(1280, 720)
    assert visual == 46 * 26
    text = accounting.estimate_text_tokens(grounding_prompt("people"))
    want = visual + accounting.IMAGE_WRAPPER_TOKENS + text + accounting.TEMPLATE_TOKENS
    assert a.usage.expected_in == b.usage.expected_in == want
    assert not a.usage.estimated and a.usage.tokens_in > visual  # the server's own count, kept beside
    assert b.usage.estimated and b.usage.tokens_in == want  # no usage block: the expectation stands in
    assert e.stats.tokens_in_expected == 2 * want
