"""`sightline bench cost`: one run, one table — calls, tokens and money per camera-hour for naive,
default and regions, with track recall against naive; `--json` writes the table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from configs import load_settings
from sightline.bench.cost import MIN_SECONDS, MODES
from sightline.bench.cost import run as main

pytestmark = pytest.mark.e2e
KEYS = {"calls_per_camera_hour", "tokens_per_camera_hour", "cost_per_camera_day", "track_recall"}


def test_cost_table_naive_default_regions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cost.json"
    settings = load_settings(None, data_dir=str(tmp_path))
    code = main(argparse.Namespace(seconds=MIN_SECONDS, json=str(out)), settings)
    printed = capsys.readouterr().out
    table = json.loads(out.read_text())
    assert set(table) == set(MODES) and all(set(row) >= KEYS for row in table.values())
    naive, default, regions = (table[m] for m in MODES)
    assert naive["calls_per_camera_hour"] == 7200  # every sampled frame at 2 fps
    assert naive["track_recall"] == 1.0 and naive["naive_tracks"] >= 4
    # Regions send the same frames as default, smaller: fewer visual tokens, every track kept.
    assert regions["visual_tokens_per_camera_hour"] < default["visual_tokens_per_camera_hour"]
    assert (
        regions["tokens_per_camera_hour"]
        < default["tokens_per_camera_hour"]
        < naive["tokens_per_camera_hour"]
    )
    assert regions["track_recall"] >= 0.95 and default["track_recall"] >= 0.95
    # Money at the engine's list price (Z.AI glm-4.5v: CNY 0.6 / 1.8 per million in / out).
    assert naive["currency"] == "CNY" and 0 < regions["cost_per_camera_day"] < naive["cost_per_camera_day"]
    assert "regions" in printed and ("targets met" in printed) == (code == 0)
