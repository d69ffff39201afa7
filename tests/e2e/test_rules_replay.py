"""Rules on generated clips through the real replay path (ingest sampling, the scripted GLM server,
the tracker): every crossing of a line is found once with its direction at 1 and 2 fps, also for
figures moving several box widths between samples; replay and dry run give the same alert ids."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bus.contracts import Alert, ObjectEvent
from bus.rulespec import load_ruleset
from configs import load_settings
from rules.backtest import dry_run
from sightline.replay.alerts import with_alerts
from sightline.replay.run import make_queries, run_replay
from sightline.samples import Figure, generate_clip
from sightline.testing.scripted_server import ScriptedServer
from sinks.store import EventFilter, Store

pytestmark = pytest.mark.e2e
RED = (40, 40, 220)  # BGR
W = 0.08  # figure width as a fraction of the frame
# Left to right at 0.1/s, right to left at 0.28/s (3.5 widths a second), left to right at 0.35/s;
# 3 s apart, longer than the tracker's max_missing_s, so three tracks.
FIGURES = [
    Figure(RED, 1.0, 7.0, (0.2, 0.55), (0.8, 0.55)),
    Figure(RED, 10.0, 12.5, (0.85, 0.55), (0.15, 0.55)),
    Figure(RED, 15.5, 17.5, (0.15, 0.55), (0.85, 0.55)),
]
EXPECTED = ["in", "out", "in"]  # `inside` is the right-hand side


def _rules(tmp_path: Path, query_id: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "lines": [
                    {
                        "id": "fence",
                        "camera": "door",
                        "points": [[0.5, 0.0], [0.5, 1.0]],
                        "inside": [0.75, 0.5],
                    }
                ],
                "rules": [{"id": "fence-any", "query": query_id, "when": {"cross": {"line": "fence"}}}],
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def crossing_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_clip(
        tmp_path_factory.mktemp("rules") / "crossings.mp4", duration_s=20, fps=10, figures=FIGURES
    )


@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_every_crossing_once_with_its_direction_and_replay_equals_dry_run(
    crossing_clip: Path, tmp_path: Path, fps: float
) -> None:
    [query] = make_queries(["people in red"], [], 10.0)
    rules_file = _rules(tmp_path, query.id)
    with ScriptedServer({"mode": "colour"}) as glm:
        settings = load_settings(
            None,
            data_dir=str(tmp_path),
            ingest={"max_width": 320, "sample_fps": fps},
            engine={"type": "openai", "base_url": glm.base_url, "api_key": "t", "model": "glm-4.5v"},
        )
        store_url = f"sqlite:///{tmp_path / 'replay.db'}"
        result = run_replay(crossing_clip, settings, [query], camera_id="door", store_url=store_url)
    tracks = sorted(
        {e.track_id for e in result.events},
        key=lambda t: min(e.pts_s for e in result.events if e.track_id == t),
    )
    assert len(tracks) == 3, [(e.track_id, e.phase, e.pts_s) for e in result.events]
    alerts = [r for r in with_alerts(result.records, rules_file) if isinstance(r, Alert)]
    assert [(a.track_id, a.direction) for a in alerts] == list(zip(tracks, EXPECTED, strict=True))
    # Between two samples the fast figures moved more than a box width: the crossing was still found.
    fast = [e for e in result.events if e.track_id == tracks[2]]
    moves = [abs(b.bbox_norm[0] - a.bbox_norm[0]) for a, b in itertools.pairwise(fast)]
    assert max(moves) > W, moves

    # Dry run over what the replay stored: the same alert ids.
    store = Store(store_url)
    try:
        rows = store.events_after(0, EventFilter(camera_id="door"), limit=10_000)
    finally:
        store.close()
    rs = load_ruleset(yaml.safe_load(rules_file.read_text()))
    tried = dry_run(rs.zones, rs.lines, rs.rules, [ObjectEvent.model_validate(p) for _, p in rows])
    assert [a.alert_id for a in tried.alerts] == [a.alert_id for a in alerts]


def test_replay_cli_writes_alerts_next_to_events(crossing_clip: Path, tmp_path: Path) -> None:
    [query] = make_queries(["people in red"], [], 10.0)
    rules_file = _rules(tmp_path, query.id)
    out = tmp_path / "out.jsonl"
    with ScriptedServer({"mode": "colour"}) as glm:
        env = {
            "SIGHTLINE_ENGINE__TYPE": "openai",
            "SIGHTLINE_ENGINE__BASE_URL": glm.base_url,
            "SIGHTLINE_ENGINE__API_KEY": "t",
            "SIGHTLINE_INGEST__SAMPLE_FPS": "1",
            "SIGHTLINE_INGEST__MAX_WIDTH": "320",
            "SIGHTLINE_DATA_DIR": str(tmp_path),
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sightline.cli",
                "replay",
                str(crossing_clip),
                "--query",
                "people in red",
                "--rules",
                str(rules_file),
                "--camera",
                "door",
                "--out",
                str(out),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    schemas = [r["schema"] for r in records]
    assert set(schemas) == {"sightline.object_event/1", "sightline.alert/1"}
    alerts = [r for r in records if r["schema"] == "sightline.alert/1"]
    assert [a["direction"] for a in alerts] == EXPECTED
    # Each alert follows the event that raised it.
    for i, r in enumerate(records):
        if r["schema"] == "sightline.alert/1":
            j = i - 1
            while records[j]["schema"] == "sightline.alert/1":
                j -= 1
            assert records[j]["event_id"] == r["event_id"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("lines: [{id: x, camera: door, points: [[0.5, 0.5], [0.5, 0.5]], inside: [0.1, 0.1]}]")
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "sightline.cli",
            "replay",
            str(crossing_clip),
            "--query",
            "people in red",
            "--rules",
            str(bad),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "zero length" in refused.stderr
