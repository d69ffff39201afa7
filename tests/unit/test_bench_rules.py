"""`sightline bench rules` measures what it says: every event of the stream evaluated, the alerts the
evaluator raises, and a verdict against the target it was given."""

from __future__ import annotations

import json
from pathlib import Path

from configs import load_settings
from sightline.bench import rules as bench
from sightline.cli import build_parser


def _run(tmp_path: Path, target: str) -> tuple[int, dict[str, object]]:
    report = tmp_path / f"r{target}.json"
    args = build_parser("bench").parse_args(
        ["bench", "rules", "--cameras", "3", "--tracks", "6", "--repeat", "1", "--no-analyzer",
         "--target", target, "--report", str(report)]
    )  # fmt: skip
    rc = bench.run(args, load_settings(None))
    return rc, json.loads(report.read_text())


def test_the_bench_evaluates_every_event_and_judges_the_target(tmp_path: Path) -> None:
    rc, report = _run(tmp_path, "1")
    assert rc == 0
    cameras = [f"cam{i:03d}" for i in range(3)]
    events = bench.stream(cameras, 6)
    assert report["events"] == len(events) and report["rules"] == 30
    _, alerts, _ = bench.evaluate_rate(bench.rule_set(cameras), events, 1)
    assert report["alerts"] == alerts > 0
    assert {e.camera_id for e in events} == set(cameras)
    rc, _ = _run(tmp_path, "1e15")
    assert rc == 1  # a target it cannot reach fails the run
