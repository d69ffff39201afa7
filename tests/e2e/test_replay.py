"""Replay: deterministic, the same in-process and through a broker, scored, usable from users' tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bus.contracts import ObjectEvent, Summary
from configs import load_settings
from sightline.replay.broker import run_replay_broker
from sightline.replay.run import make_queries, run_replay
from sightline.replay.scored import Replayed
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.e2e
TRUTH = Path(__file__).parents[1] / "data" / "vtest_people_0-20s.json"


def glm_settings(url: str, tmp_path: Path) -> object:
    return load_settings(
        None,
        data_dir=str(tmp_path),
        ingest={"max_width": 320},
        engine={"type": "openai", "base_url": url, "api_key": "t", "model": "glm-4.5v"},
    )


def test_two_replays_are_byte_identical_and_match_the_broker_replay(
    red_figure_clip: tuple[Path, Figure], kafka_bootstrap: str, tmp_path: Path
) -> None:
    clip, fig = red_figure_clip
    queries = make_queries(["people in red"], ["What happens?"], window_s=4.0)
    with ScriptedServer({"mode": "colour"}) as glm:
        settings = glm_settings(glm.base_url, tmp_path)
        first = run_replay(clip, settings, queries)  # type: ignore[arg-type]
        second = run_replay(clip, settings, queries)  # type: ignore[arg-type]
        brokered = run_replay_broker(clip, settings, queries, bootstrap=kafka_bootstrap)  # type: ignore[arg-type]
    assert first.jsonl() == second.jsonl()
    assert brokered.jsonl() == first.jsonl()
    lines = first.jsonl().splitlines()
    kinds = {type(r).__name__ for r in first.records}
    assert kinds == {"ObjectEvent", "Summary"} and len(lines) == len(first.records)
    for r in first.records:  # exactly the topic contracts
        model = ObjectEvent if isinstance(r, ObjectEvent) else Summary
        assert model.model_validate_json(r.model_dump_json(by_alias=True)) == r
    start = next(e for e in first.events if e.phase == "start")
    truth = fig.box_at(start.pts_s, 640, 360)
    assert truth is not None
    # Frames travelled at 320 px wide; boxes are in the original 640×360 frame.
    assert all(abs(a - b) < 4 for a, b in zip(start.bbox, truth, strict=True)), (start.bbox, truth)
    assert first.engine_calls > 0 and first.tokens_in > 0 and first.cost > 0


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sightline.cli", "replay", *args, "--no-progress"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_cli_scores_against_the_vtest_truth_and_gates_on_recall(vtest_20s: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    gates = ["--query", "people", "--truth", str(TRUTH), "--min-recall", "0.05"]
    ok = run_cli(str(vtest_20s), *gates, "--min-idf1", "0.05", "--out", str(out))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASSED: recall" in ok.stdout and "idf1" in ok.stdout and "engine calls" in ok.stdout
    assert "IDF1 / IDP / IDR" in ok.stdout and "MOTA" in ok.stdout
    assert out.read_text().count("\n") >= 1
    strict = run_cli(str(vtest_20s), *gates, "--min-idf1", "0.99")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "FAILED: idf1" in strict.stdout


def test_cli_against_an_openai_compatible_server_from_env(
    red_figure_clip: tuple[Path, Figure], tmp_path: Path
) -> None:
    clip, fig = red_figure_clip
    out = tmp_path / "events.jsonl"
    with ScriptedServer({"mode": "colour"}) as glm:
        env = {
            "SIGHTLINE_ENGINE__TYPE": "openai",
            "SIGHTLINE_ENGINE__BASE_URL": glm.base_url,
            "SIGHTLINE_ENGINE__API_KEY": "x",
            "SIGHTLINE_INGEST__MAX_WIDTH": "256",
        }
        done = run_cli(str(clip), "--query", "people in red", "--out", str(out), env=env)
        assert done.returncode == 0, done.stderr
        assert glm.requests, "the engine never called the server"
    events = [ObjectEvent.model_validate_json(line) for line in out.read_text().splitlines()]
    assert events and all(e.engine == "openai" for e in events)
    for e in events:
        if e.phase == "end":
            continue
        truth = fig.box_at(e.pts_s, 640, 360)
        assert truth and all(abs(a - b) < 5 for a, b in zip(e.bbox, truth, strict=True)), (e.bbox, truth)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    missing = run_cli(str(tmp_path / "nope.mp4"), "--query", "people")
    assert missing.returncode == 2 and "no such video file" in missing.stderr
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video")
    bad = run_cli(str(not_video), "--query", "people")
    assert bad.returncode == 1 and "could not be read" in bad.stderr
    none = run_cli(str(not_video))
    assert none.returncode == 2 and "at least one --query" in none.stderr


def test_pytest_plugin_fixture(sightline_replay, red_figure_clip: tuple[Path, Figure]) -> None:  # type: ignore[no-untyped-def]
    clip, _ = red_figure_clip
    with ScriptedServer({"mode": "colour"}) as glm:
        run: Replayed = sightline_replay(
            clip,
            queries=["people in red"],
            engine={"type": "openai", "base_url": glm.base_url, "api_key": "x"},
        )
    tracks = run.tracks()
    assert len(tracks) == 1
    [events] = tracks.values()
    assert events[0].phase == "start" and events[-1].phase == "end"
