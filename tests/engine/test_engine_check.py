"""`sightline engine check` against the scripted server, through the real CLI and env settings."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2

from glm45v_engine.check import PROBE_FIGURE, main, probe_image
from sightline.testing.scripted_server import ScriptedServer

SIGHTLINE = Path(sys.executable).parent / "sightline"


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    return subprocess.run(
        [str(SIGHTLINE), "engine", "check", *args], env=full, capture_output=True, text=True, timeout=60
    )


def test_cli_check_against_scripted_server_prints_model_tokens_and_boxes() -> None:
    with ScriptedServer({"mode": "colour", "model": "scripted-glm-standin"}) as srv:
        r = run_cli({"SIGHTLINE_ENGINE__TYPE": "openai", "SIGHTLINE_ENGINE__BASE_URL": srv.base_url})
        body = srv.requests[-1]
    assert r.returncode == 0, r.stderr
    assert "model:    scripted-glm-standin" in r.stdout  # what the server reports, not what we asked for
    assert re.search(r"tokens:   \d+ in, \d+ out", r.stdout)
    assert re.search(r"cost:     0\.\d+ CNY", r.stdout)
    m = re.search(r"- person: \[(\d+), (\d+), (\d+), (\d+)\] px", r.stdout)
    assert m, r.stdout
    got = [int(v) for v in m.groups()]
    assert all(abs(a - b) <= 3 for a, b in zip(got, PROBE_FIGURE, strict=True))  # the probe's figure
    assert body["model"] == "zai-org/GLM-4.5V-FP8" and body["chat_template_kwargs"] == {
        "enable_thinking": False
    }


def test_cli_check_with_own_image_and_query(tmp_path: Path) -> None:
    img = probe_image()
    path = tmp_path / "probe.png"
    cv2.imwrite(str(path), img)
    with ScriptedServer({"steps": [{"text": "Nothing like that here."}]}) as srv:
        r = run_cli(
            {"SIGHTLINE_ENGINE__TYPE": "openai", "SIGHTLINE_ENGINE__BASE_URL": srv.base_url},
            "--image",
            str(path),
            "--query",
            "forklifts",
        )
        sent = srv.requests[-1]["messages"][0]["content"][-1]["text"]
    assert r.returncode == 0, r.stderr
    assert "forklifts" in sent and "boxes:    0" in r.stdout and "Nothing like that here." in r.stdout


def test_cli_check_unreachable_engine_fails_clearly() -> None:
    with ScriptedServer() as srv:
        dead = srv.base_url  # nothing listens here once the server has stopped
    r = run_cli(
        {
            "SIGHTLINE_ENGINE__TYPE": "openai",
            "SIGHTLINE_ENGINE__BASE_URL": dead,
            "SIGHTLINE_ENGINE__MAX_RETRIES": "1",
            "SIGHTLINE_ENGINE__BACKOFF_S": "0.01",
        }
    )
    assert r.returncode == 1
    assert "engine check FAILED" in r.stderr and dead in r.stderr and "ConnectError" in r.stderr


def test_check_main_with_baseline_is_honest_about_what_it_is() -> None:
    out = io.StringIO()
    assert main({"type": "baseline"}, query="people", out=out) == 0
    text = out.getvalue()
    assert "engine:   baseline" in text and "model:    opencv-hog-people" in text
    assert "not a language model" in text


def test_check_main_bad_image_path(tmp_path: Path) -> None:
    assert main({"type": "baseline"}, image=str(tmp_path / "nope.jpg")) == 2


def test_load_engine_with_the_minimal_openai_dict() -> None:
    import asyncio

    import numpy as np

    from glm45v_engine import Frame, Grounding, load_engine

    with ScriptedServer({"mode": "colour"}) as srv:
        engine = load_engine(
            {"type": "openai", "base_url": srv.base_url, "model": "glm-4.5v", "api_key": "x"}
        )

        async def go() -> list[Grounding]:
            try:
                return list(await engine.ground([Frame(image=probe_image())], "people in red"))
            finally:
                await engine.aclose()

        [g] = asyncio.run(go())
        assert srv.requests[-1]["model"] == "glm-4.5v"
    assert len(g.boxes) == 1 and g.boxes[0].label == "person"
    assert np.allclose(g.boxes[0].bbox, PROBE_FIGURE, atol=3)
