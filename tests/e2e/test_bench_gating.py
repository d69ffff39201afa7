"""`sightline bench gating`: gating saves engine calls without losing tracks; the matching is exact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from configs import Settings, load_settings
from sightline.bench.gating import Span, match_tracks, retention, run_bench
from sightline.bench.gating import run as main
from sightline.samples import Figure, generate_clip

pytestmark = pytest.mark.e2e
RED = (30, 30, 220)  # BGR


def spans(*ranges: tuple[float, float], query: str = "people") -> list[Span]:
    return [Span(query, f"t{i}", a, b) for i, (a, b) in enumerate(ranges)]


def test_matching_is_one_to_one_by_time_overlap() -> None:
    ref = spans((0, 10), (5, 15), (20, 30), (40, 45))
    cand = spans((1, 9), (6, 14), (31, 35), (44, 50))
    # By hand: A-X 8 s (A-Y only 4), B-Y 8 s (B-X only 4); C meets nothing; D-W 1 s.
    assert sorted(match_tracks(ref, cand)) == [(0, 0, 8.0), (1, 1, 8.0), (3, 3, 1.0)]
    assert retention(ref, cand) == 0.75


def test_matching_keeps_more_tracks_rather_than_one_longer_overlap() -> None:
    ref = spans((0, 10), (9, 10.5))
    cand = spans((0, 10.5), (8, 8.5))
    # Max overlap alone pairs ref0-cand0 (10 s) and leaves ref1 alone; two kept tracks beat it.
    assert sorted(match_tracks(ref, cand)) == [(0, 1, 0.5), (1, 0, 1.5)]
    assert retention(ref, cand) == 1.0


def test_matching_edge_cases() -> None:
    assert match_tracks(spans((0, 5)), spans((5, 9))) == [(0, 0, 0.0)]  # touching counts
    assert match_tracks(spans((0, 5)), spans((0, 5), query="cars")) == []  # other query never
    assert retention([], spans((0, 1))) == 1.0
    assert retention(spans((0, 1)), []) == 0.0


def _settings(tmp_path: Path) -> Settings:
    return load_settings(None, data_dir=str(tmp_path))


def test_gated_run_makes_fewer_calls_and_keeps_every_track(tmp_path: Path) -> None:
    clip = generate_clip(
        tmp_path / "two_walkers.mp4",
        duration_s=36,
        fps=10,
        figures=[
            Figure(RED, 4.0, 13.0, (0.1, 0.6), (0.9, 0.55)),
            Figure(RED, 22.0, 31.0, (0.9, 0.5), (0.15, 0.6)),
        ],
    )
    report = run_bench(clip, _settings(tmp_path), scripted=True)
    ungated, gated = report["modes"]
    assert (ungated["gate"], ungated["interval_s"]) == ("always", 0.0)
    assert (gated["gate"], gated["interval_s"]) == ("motion", 1.0)
    assert ungated["sampled"] == gated["sampled"] == 72  # 36 s at 2 fps, both modes
    assert ungated["engine_calls"] == ungated["published"] == 72
    assert gated["published"] < gated["sampled"]
    assert gated["engine_calls"] < ungated["engine_calls"]
    assert ungated["tracks"] == 2, report["ungated_tracks"]
    assert report["track_retention"] == 1.0 and not report["unmatched"], report["gated_tracks"]
    # Each walker is tracked for most of its walk in both modes.
    for t, (enter, leave) in zip(report["ungated_tracks"], [(4.0, 13.0), (22.0, 31.0)], strict=True):
        assert t["start_s"] <= enter + 1.0 and t["end_s"] >= leave - 1.0, t
    assert report["time_coverage"] > 0.95  # 0.91 when the gate missed low-contrast walkers (delta 25)


def test_cli_prints_the_table_writes_the_report_and_exits_on_the_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gating.json"
    args = argparse.Namespace(video=None, report=str(out), seconds=30.0)
    code = main(args, _settings(tmp_path))
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert (tmp_path / "bench" / "gating-v1-30s.mp4").is_file()  # cached under the data dir
    assert "call ratio (ungated / gated)" in printed and "track retention" in printed
    assert code == (0 if report["met"] else 1)
    assert ("targets met" in printed) == report["met"] and ("TARGETS MISSED" in printed) != report["met"]
    ungated, gated = report["modes"]
    assert report["call_ratio"] == pytest.approx(ungated["engine_calls"] / gated["engine_calls"], abs=1e-3)
