"""The scripted GLM server itself: CLI start, runtime scenario changes, and colour-mode truth on a
generated clip (what the e2e tests of other packages rely on)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from glm45v_engine import Frame, Grounding, load_engine
from glm45v_engine.accounting import EngineCollector, stats_samples
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chat(base: str, **extra: object) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], **extra}
    return httpx.post(f"{base}/chat/completions", json=body, timeout=10)


def test_module_cli_serves_a_scenario_file_and_takes_a_new_scenario_at_runtime(tmp_path: Path) -> None:
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"model": "my-standin", "default": {"text": "from the file"}}))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sightline.testing.scripted_server",
            "--port",
            str(port),
            "--scenario",
            str(scenario),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                models = httpx.get(f"{base}/models", timeout=1).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert models["data"][0]["id"] == "my-standin"
        r = chat(base, chat_template_kwargs={"enable_thinking": False})
        assert r.json()["choices"][0]["message"]["content"] == "from the file"
        assert r.json()["usage"]["prompt_tokens"] > 0
        flip = {"steps": [{"status": 503, "error": "overloaded"}], "default": {"text": "after"}}
        assert httpx.post(f"http://127.0.0.1:{port}/scenario", json=flip).status_code == 200
        assert chat(base).status_code == 503
        assert (
            chat(base, chat_template_kwargs={"enable_thinking": False}).json()["choices"][0]["message"][
                "content"
            ]
            == "after"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_request_body_is_a_400() -> None:
    with ScriptedServer() as srv:
        r = httpx.post(f"{srv.base_url}/chat/completions", content=b"{not json", timeout=5)
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_streaming_protocol_shape() -> None:
    with ScriptedServer({"reasoning": "reasoning_content", "default": {"text": "ok"}}) as srv:
        r = chat(srv.base_url, stream=True, stream_options={"include_usage": True})
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "ok"
    assert any(c["choices"] and "reasoning_content" in c["choices"][0]["delta"] for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] > 0 and chunks[-1]["choices"] == []


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_colour_mode_gives_truthful_boxes_on_the_generated_red_figure_clip(
    red_figure_clip: tuple[Path, Figure],
) -> None:
    path, fig = red_figure_clip
    frames = []
    with av.open(str(path)) as c:
        for i, vf in enumerate(c.decode(video=0)):
            if i % 10 == 5:  # one frame per second, mid-second
                frames.append(
                    Frame(
                        image=np.asarray(vf.to_ndarray(format="bgr24"), np.uint8), pts_s=float(vf.time or 0.0)
                    )
                )
    with ScriptedServer({"mode": "colour"}) as srv:
        engine = load_engine(
            {"type": "openai", "base_url": srv.base_url, "api_key": "x", "max_image_side": 448}
        )

        async def go() -> list[Grounding]:
            try:
                return list(await engine.ground(frames, "people in red"))
            finally:
                await engine.aclose()

        results = asyncio.run(go())
    for f, g in zip(frames, results, strict=True):
        truth = fig.box_at(f.pts_s or 0.0, 640, 360)
        boxes = g.boxes
        if truth is None:
            assert boxes == (), f"t={f.pts_s}: nothing should be found"
        else:
            assert len(boxes) == 1 and iou(boxes[0].bbox, truth) > 0.8, (f.pts_s, boxes, truth)


def test_metrics_collector_exports_engine_counters() -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, generate_latest

    with ScriptedServer({"default": {"text": "none"}}) as srv:
        engine = load_engine({"type": "openai", "base_url": srv.base_url, "api_key": "x"})

        async def go() -> None:
            try:
                await engine.ground([Frame(image=np.zeros((64, 64, 3), np.uint8))], "people")
            finally:
                await engine.aclose()

        asyncio.run(go())
    reg = CollectorRegistry()
    reg.register(EngineCollector(engine))
    text = generate_latest(reg).decode()
    samples = {name: v for name, _, v in stats_samples(engine.name, engine.model, engine.stats)}
    assert samples["sightline_engine_calls_total"] == 1 and samples["sightline_engine_tokens_in_total"] > 0
    assert 'sightline_engine_calls_total{engine="openai",model="scripted-glm-standin"} 1.0' in text
    assert "sightline_engine_cost_total" in text
