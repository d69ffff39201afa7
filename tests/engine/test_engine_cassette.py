"""Cassette: record through the real openai backend, replay exactly without any server."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glm45v_engine import Clip, EngineError, Frame, load_engine
from glm45v_engine.cassette import CassetteEngine
from sightline.testing.scripted_server import ScriptedServer

RED = (30, 30, 220)


def frames() -> list[Frame]:
    out = []
    for i in range(3):
        img = np.full((180, 320, 3), 100, np.uint8)
        img[40:160, 30 + 80 * i : 70 + 80 * i] = RED
        out.append(Frame(image=img, pts_s=float(i), camera_id="cam"))
    return out


async def session(engine: Any) -> tuple[Any, Any, Any]:
    try:
        fs = frames()
        g = await engine.ground(fs, "people in red", thinking=True)
        s = await engine.summarize(Clip(frames=tuple(fs)), "When is someone in red visible?")
        a = await engine.ask(fs[:1], "What colour is the figure?")
        return g, s, a
    finally:
        await engine.aclose()


def test_record_then_replay_is_identical_and_needs_no_server(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with ScriptedServer({"mode": "colour", "reasoning": "reasoning_content"}) as srv:
        inner = {"type": "openai", "base_url": srv.base_url, "api_key": "x", "video_mode": "frames"}
        recorder = load_engine({"type": "cassette", "path": str(path), "mode": "record", "inner": inner})
        recorded = asyncio.run(session(recorder))
        sent = len(srv.requests)
    assert sent == 5  # 3 frames + 1 summary + 1 ask
    assert len(path.read_text().splitlines()) == 5
    assert all(len(g.boxes) == 1 for g in recorded[0]) and recorded[0][0].thinking
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    player = load_engine({"type": "cassette", "path": str(path), "mode": "replay"})
    assert isinstance(player, CassetteEngine) and player.model == "scripted-glm-standin"
    replayed = asyncio.run(session(player))  # the server is gone: everything comes from the file
    assert replayed == recorded
    assert [g.raw_text for g in replayed[0]] == [g.raw_text for g in recorded[0]]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert player.stats.calls == 5 and player.stats.tokens_in == sum(
        x.usage.tokens_in for x in [*recorded[0], recorded[1], recorded[2]]
    )


def test_replay_miss_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with ScriptedServer() as srv:
        inner = {"type": "openai", "base_url": srv.base_url, "api_key": "x"}
        rec = load_engine({"type": "cassette", "path": str(path), "mode": "record", "inner": inner})
        asyncio.run(rec.ground(frames()[:1], "people"))
        asyncio.run(rec.aclose())
    player = load_engine({"type": "cassette", "path": str(path), "mode": "replay"})
    with pytest.raises(EngineError, match="no recording of this ground request"):
        asyncio.run(player.ground(frames()[:1], "cars"))  # other query -> other key
    with pytest.raises(EngineError, match="does not exist"):
        load_engine({"type": "cassette", "path": str(tmp_path / "missing.jsonl"), "mode": "replay"})
