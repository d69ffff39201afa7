"""The `openai` backend against the scripted OpenAI-compatible GLM server (the model boundary).

Every test checks what actually went over the wire (the request bodies the server recorded) as well
as what the engine returned.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from glm45v_engine import Clip, EngineError, Frame, load_engine
from glm45v_engine.openai_backend import OpenAIEngine
from glm45v_engine.resilience import BreakerState
from sightline.samples import Figure, background, render
from sightline.testing.scripted_server import ScriptedServer

RED = (30, 30, 220)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


def engine(srv: ScriptedServer, **cfg: Any) -> OpenAIEngine:
    base = {
        "type": "openai",
        "base_url": srv.base_url,
        "model": "glm-4.5v",
        "api_key": "x",
        "backoff_s": 0.01,
    }
    e = load_engine({**base, **cfg})
    assert isinstance(e, OpenAIEngine)
    return e


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def frame(w: int = 640, h: int = 360, rects: tuple[tuple[int, int, int, int], ...] = (), **kw: Any) -> Frame:
    img = np.full((h, w, 3), 110, np.uint8)
    for x1, y1, x2, y2 in rects:
        img[y1:y2, x1:x2] = RED
    return Frame(image=img, **kw)


def sent_images(body: dict[str, Any]) -> list[Any]:
    out = []
    for part in body["messages"][0]["content"]:
        if part["type"] == "image_url":
            url = part["image_url"]["url"]
            assert url.startswith("data:image/jpeg;base64,")
            out.append(cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), 1))
    return out


async def ground_and_close(e: OpenAIEngine, frames: list[Frame], query: str, **kw: Any) -> Any:
    try:
        return await e.ground(frames, query, **kw)
    finally:
        await e.aclose()


# --- thinking switch per flavor -------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["vllm", "sglang", "zai"])
@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("reasoning", ["inline", "reasoning_content"])
def test_thinking_switch_sent_per_flavor_and_reasoning_read_back(
    server: ScriptedServer, flavor: str, thinking: bool, reasoning: str
) -> None:
    server.set_scenario(
        {"reasoning": reasoning, "thinking_text": "the red one is left", "default": {"text": "none"}}
    )
    [g] = run(ground_and_close(engine(server, flavor=flavor), [frame()], "people", thinking=thinking))
    body = server.requests[-1]
    if flavor == "zai":
        assert body["thinking"] == {"type": "enabled" if thinking else "disabled"}
        assert "chat_template_kwargs" not in body
    else:
        assert body["chat_template_kwargs"] == {"enable_thinking": thinking}
        assert "thinking" not in body
    assert body["model"] == "glm-4.5v"
    if thinking:
        assert g.thinking == "the red one is left"
    else:
        assert g.thinking is None
    assert "<think>" not in (g.thinking or "") and g.boxes == ()


# --- boxes in original pixels after downscaling ------------------------------------------------


def test_several_boxes_mapped_to_original_pixels_after_downscale(server: ScriptedServer) -> None:
    server.set_scenario(
        {
            "steps": [
                {
                    "text": "Two people.",
                    "boxes": [
                        {"label": "person", "bbox": [100, 200, 300, 400]},
                        {"label": "person", "bbox": [500, 500, 750, 1000]},
                    ],
                }
            ]
        }
    )
    big = frame(1920, 1080)
    [g] = run(ground_and_close(engine(server, max_image_side=640), [big], "people"))
    [img] = sent_images(server.requests[-1])
    assert img.shape[:2] == (360, 640)  # what the model saw
    assert g.image_size == (1920, 1080)
    assert [b.bbox for b in g.boxes] == [
        pytest.approx((192.0, 216.0, 576.0, 432.0)),
        pytest.approx((960.0, 540.0, 1440.0, 1080.0)),
    ]
    assert [b.label for b in g.boxes] == ["person", "person"]


def test_colour_mode_boxes_land_on_the_figures_in_original_pixels(server: ScriptedServer) -> None:
    server.set_scenario({"mode": "colour", "colours": [{"name": "red", "bgr": RED, "head_ratio": 0}]})
    rects = ((200, 300, 320, 900), (1400, 100, 1600, 500))
    [g] = run(
        ground_and_close(engine(server, max_image_side=800), [frame(1920, 1080, rects)], "people in red")
    )
    assert len(g.boxes) == 2
    for box, truth in zip(g.boxes, rects, strict=True):
        assert box.bbox == pytest.approx(truth, abs=6)  # 800 px JPEG, 0–1000 grid: a few px at 1920
        assert box.label == "person"


def test_frame_already_small_is_sent_as_its_own_jpeg(server: ScriptedServer) -> None:
    f = frame(320, 240)
    jpeg = cv2.imencode(".jpg", f.image)[1].tobytes()
    small = Frame(image=f.image, jpeg=jpeg)
    run(ground_and_close(engine(server), [small], "people"))
    url = server.requests[-1]["messages"][0]["content"][0]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == jpeg


# --- clips both ways -------------------------------------------------------------------------------


def red_clip(start_s: float = 30.0) -> Clip:
    """10 frames at 1 fps from t=start_s; a red figure is on screen for the frames at 3..6 s."""
    fig = Figure(RED, 3.0, 7.0, (0.2, 0.5), (0.8, 0.5))
    bg = background(320, 180)
    frames = tuple(
        Frame(image=render(float(i), bg, [fig]), pts_s=start_s + i, camera_id="cam1") for i in range(10)
    )
    return Clip(frames=frames, camera_id="cam1")


def test_clip_as_video_url(server: ScriptedServer) -> None:
    server.set_scenario({"mode": "colour"})
    e = engine(server, video_mode="video_url")
    s = run(_summarize(e, red_clip(), "When is a person in red visible?"))
    [body] = server.requests
    kinds = [p["type"] for p in body["messages"][0]["content"]]
    assert kinds == ["video_url", "text"]
    assert body["messages"][0]["content"][0]["video_url"]["url"].startswith("data:video/mp4;base64,")
    # The model counts from the start of the video; the engine puts segments back on the clip's clock.
    assert [(seg.start_s, seg.end_s) for seg in s.segments] == [pytest.approx((33.0, 36.0), abs=1.01)]
    assert s.usage.tokens_in > 0 and s.usage.cost > 0


def test_clip_as_timestamped_frames(server: ScriptedServer) -> None:
    server.set_scenario({"mode": "colour"})
    e = engine(server, video_mode="frames", max_clip_frames=10)
    s = run(_summarize(e, red_clip(), "When is a person in red visible?"))
    [body] = server.requests
    content = body["messages"][0]["content"]
    assert sum(p["type"] == "image_url" for p in content) == 10
    captions = [p["text"] for p in content if p["type"] == "text" and p["text"].startswith("Frame at")]
    assert captions[0] == "Frame at t=30.0s:" and captions[-1] == "Frame at t=39.0s:"
    assert [(seg.start_s, seg.end_s) for seg in s.segments] == [(33.0, 36.0)]


def test_auto_falls_back_to_frames_when_server_refuses_video(server: ScriptedServer) -> None:
    server.set_scenario({"mode": "colour", "video": False})
    e = engine(server, video_mode="auto")
    s = run(_summarize(e, red_clip(), "red person?"))
    kinds = [[p["type"] for p in b["messages"][0]["content"]] for b in server.requests]
    assert "video_url" in kinds[0] and "video_url" not in kinds[1] and "image_url" in kinds[1]
    assert e.video_ok is False and [(seg.start_s, seg.end_s) for seg in s.segments] == [(33.0, 36.0)]
    run(_summarize(e, red_clip(), "red person?"))  # remembered: no second video attempt
    assert len(server.requests) == 3 and "video_url" not in str(server.requests[2])[:2000]


async def _summarize(e: OpenAIEngine, clip: Clip, prompt: str) -> Any:
    try:
        return await e.summarize(clip, prompt)
    finally:
        await e.aclose()


# --- faults ------------------------------------------------------------------------------------


def test_500s_are_retried_then_surface_as_engine_error(server: ScriptedServer) -> None:
    server.set_scenario({"steps": [{"status": 500}] * 10})
    e = engine(server, max_retries=2, breaker_failures=10)
    with pytest.raises(EngineError, match="failed 3 time"):
        run(ground_and_close(e, [frame()], "people"))
    assert len(server.requests) == 3
    assert e.stats.retries == 2 and e.stats.by_error == {"http_500": 3} and e.stats.calls == 0


def test_a_500_then_success_is_transparent(server: ScriptedServer) -> None:
    server.set_scenario(
        {"steps": [{"status": 503}, {"boxes": [{"label": "person", "bbox": [0, 0, 500, 500]}]}]}
    )
    e = engine(server, max_retries=2)
    [g] = run(ground_and_close(e, [frame()], "people"))
    assert len(g.boxes) == 1 and len(server.requests) == 2 and e.stats.retries == 1 and e.stats.calls == 1


def test_timeouts_are_retried_then_surface_as_engine_error(server: ScriptedServer) -> None:
    server.set_scenario({"hang_s": 5, "steps": [{"fault": "hang"}] * 5})
    e = engine(server, timeout_s=0.3, max_retries=1, breaker_failures=10)
    t0 = time.monotonic()
    with pytest.raises(EngineError, match="timeout"):
        run(ground_and_close(e, [frame()], "people"))
    assert time.monotonic() - t0 < 3  # gave up on time, did not wait for the hang
    assert len(server.requests) == 2 and e.stats.by_error == {"timeout": 2}


def test_timeout_then_success(server: ScriptedServer) -> None:
    server.set_scenario({"hang_s": 5, "steps": [{"fault": "hang"}, {"text": "none"}]})
    e = engine(server, timeout_s=0.3, max_retries=2)
    [g] = run(ground_and_close(e, [frame()], "people"))
    assert g.boxes == () and e.stats.by_error == {"timeout": 1} and e.stats.calls == 1


@pytest.mark.parametrize("fault", ["malformed", "empty_choices"])
def test_malformed_body_is_retried(server: ScriptedServer, fault: str) -> None:
    server.set_scenario({"steps": [{"fault": fault}, {"boxes": [{"bbox": [10, 10, 500, 500]}]}]})
    e = engine(server, max_retries=1)
    [g] = run(ground_and_close(e, [frame()], "people"))
    assert [b.label for b in g.boxes] == ["people"]  # unlabelled box takes the query as its label
    assert e.stats.by_error == {"malformed": 1}


def test_malformed_forever_is_an_engine_error(server: ScriptedServer) -> None:
    server.set_scenario({"steps": [{"fault": "malformed"}] * 5})
    with pytest.raises(EngineError, match="malformed"):
        run(ground_and_close(engine(server, max_retries=1), [frame()], "people"))


def test_garbage_text_yields_no_boxes_not_an_exception(server: ScriptedServer) -> None:
    server.set_scenario({"steps": [{"fault": "garbage", "text": "x"}]})
    [g] = run(ground_and_close(engine(server), [frame()], "people"))
    assert g.boxes == () and "begin_of_box" in g.raw_text


def test_client_error_is_not_retried(server: ScriptedServer) -> None:
    server.set_scenario({"steps": [{"status": 401, "error": "bad key"}]})
    e = engine(server, max_retries=3)
    with pytest.raises(EngineError, match=r"401.*bad key"):
        run(ground_and_close(e, [frame()], "people"))
    assert len(server.requests) == 1


def test_circuit_breaker_fails_fast_then_recovers(server: ScriptedServer) -> None:
    server.set_scenario({"steps": [{"status": 500}, {"status": 500}]})
    e = engine(server, max_retries=0, breaker_failures=2, breaker_reset_s=0.3)

    async def scenario() -> None:
        try:
            for _ in range(2):
                with pytest.raises(EngineError, match="HTTP 500"):
                    await e.ground([frame()], "people")
            assert e.breaker_state is BreakerState.OPEN
            with pytest.raises(EngineError, match="circuit open"):
                await e.ground([frame()], "people")
            assert len(server.requests) == 2  # the open breaker did not reach the server
            await asyncio.sleep(0.35)
            await e.ground([frame()], "people")  # half-open trial succeeds and closes it
            assert str(e.breaker_state) == BreakerState.CLOSED.value
        finally:
            await e.aclose()

    run(scenario())
    assert e.stats.by_error["circuit_open"] == 1


def test_a_cancelled_half_open_trial_does_not_keep_the_breaker_shut(server: ScriptedServer) -> None:
    """A caller may cancel a call (the analyzer cancels prefetched calls nobody will take); if that
    call was the half-open trial, the next call must be allowed to try, not refused forever."""
    server.set_scenario({"steps": [{"status": 500}, {"status": 500}, {"text": "none", "delay_s": 5.0}]})
    e = engine(server, max_retries=0, breaker_failures=2, breaker_reset_s=0.2)

    async def scenario() -> None:
        try:
            for _ in range(2):
                with pytest.raises(EngineError, match="HTTP 500"):
                    await e.ground([frame()], "people")
            await asyncio.sleep(0.25)
            trial = asyncio.ensure_future(e.ground([frame()], "people"))  # the trial hangs…
            await asyncio.sleep(0.2)
            trial.cancel()  # …and is cancelled by its caller
            with pytest.raises(asyncio.CancelledError):
                await trial
            [g] = await e.ground([frame()], "people")  # another trial goes through and closes it
            assert g.raw_text == "none" and str(e.breaker_state) == BreakerState.CLOSED.value
        finally:
            await e.aclose()

    run(scenario())


def test_concurrency_is_bounded(server: ScriptedServer) -> None:
    server.set_scenario({"latency_s": 0.15})
    e = engine(server, max_concurrency=2)
    t0 = time.monotonic()
    gs = run(ground_and_close(e, [frame(camera_id=f"c{i}") for i in range(6)], "people"))
    assert len(gs) == 6 and len(server.requests) == 6
    assert server.max_in_flight == 2
    assert time.monotonic() - t0 >= 3 * 0.15  # three waves of two


# --- streaming, usage, model, auth ---------------------------------------------------------------


@pytest.mark.parametrize("reasoning", ["inline", "reasoning", "reasoning_content"])
def test_streaming_reads_content_reasoning_and_usage(server: ScriptedServer, reasoning: str) -> None:
    server.set_scenario(
        {
            "model": "zai-org/GLM-4.5V-FP8",
            "reasoning": reasoning,
            "thinking_text": "looking left to right",
            "steps": [{"boxes": [{"label": "person", "bbox": [100, 100, 200, 900]}]}],
        }
    )
    e = engine(server, stream=True)
    [g] = run(ground_and_close(e, [frame()], "people", thinking=True))
    body = server.requests[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert g.thinking == "looking left to right" and len(g.boxes) == 1
    assert g.usage.tokens_in > 0 and not g.usage.estimated
    assert e.model == "zai-org/GLM-4.5V-FP8"


def test_stream_disconnect_is_retried(server: ScriptedServer) -> None:
    server.set_scenario({"steps": [{"fault": "disconnect", "text": "x" * 200}, {"text": "none"}]})
    e = engine(server, stream=True, max_retries=1)
    [g] = run(ground_and_close(e, [frame()], "people"))
    assert g.raw_text == "none" and e.stats.retries == 1


def test_usage_cost_and_model_come_from_the_server(server: ScriptedServer) -> None:
    server.set_scenario(
        {"model": "scripted-glm-standin", "steps": [{"text": "none"}, {"text": "none", "usage": False}]}
    )
    e = engine(server, prices={"input_per_m": 2.0, "output_per_m": 10.0})

    async def two() -> list[Any]:
        try:
            return [await e.ground([frame()], "people"), await e.ground([frame()], "people")]
        finally:
            await e.aclose()

    [[a], [b]] = run(two())
    assert e.model == "scripted-glm-standin"  # never claims to be GLM-4.5V on a stand-in's behalf
    assert a.usage.cost == pytest.approx(a.usage.tokens_in * 2e-6 + a.usage.tokens_out * 10e-6)
    assert not a.usage.estimated and b.usage.estimated and b.usage.tokens_in > 0
    assert e.stats.calls == 2 and e.stats.tokens_in == a.usage.tokens_in + b.usage.tokens_in
    assert e.stats.cost == pytest.approx(a.usage.cost + b.usage.cost)


def test_api_key_from_config_or_env(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    run(ground_and_close(engine(server, api_key="sk-config"), [frame()], "people"))
    assert server.state.headers[-1]["authorization"] == "Bearer sk-config"
    monkeypatch.setenv("ZAI_API_KEY", "zai-env")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run(ground_and_close(engine(server, api_key=None, flavor="zai"), [frame()], "people"))
    assert server.state.headers[-1]["authorization"] == "Bearer zai-env"


def test_ask_sends_all_frames_and_returns_text_and_boxes(server: ScriptedServer) -> None:
    server.set_scenario(
        {"steps": [{"text": "The chart peaks in May.", "boxes": [{"bbox": [0, 0, 1000, 500]}]}]}
    )
    e = engine(server)

    async def ask() -> Any:
        try:
            return await e.ask([frame(), frame(pts_s=1.0)], "Which month peaks?")
        finally:
            await e.aclose()

    a = run(ask())
    assert a.text.startswith("The chart peaks in May.") and a.boxes[0].bbox == pytest.approx((0, 0, 640, 180))
    assert len(sent_images(server.requests[-1])) == 2


def test_config_thinking_is_the_default_and_a_call_can_override_it(server: ScriptedServer) -> None:
    e = engine(server, thinking=True)

    async def two() -> None:
        try:
            await e.ground([frame()], "people")
            await e.ground([frame()], "people", thinking=False)
        finally:
            await e.aclose()

    run(two())
    assert [b["chat_template_kwargs"]["enable_thinking"] for b in server.requests] == [True, False]
