"""`sightline bench search` on a small store: every track indexed through the sink's path, the
queries timed, and the index compared with a brute-force scan of the same rows."""

from __future__ import annotations

import json
from pathlib import Path

from configs import load_settings
from sightline.bench import search as bench
from sightline.cli import build_parser


def test_a_small_run_indexes_every_track_and_agrees_with_the_scan(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    args = build_parser("bench").parse_args(
        ["bench", "search", "--only", "sqlite", "--tracks", "3000", "--queries", "8",
         "--brute-queries", "2", "--report", str(report)]
    )  # fmt: skip
    bench.run(args, load_settings(None))  # its exit code is the speed verdict: not this test's business
    s = json.loads(report.read_text())["sqlite"]
    assert s["tracks"] == 3000 and s["tracks_per_s"] > 0
    assert s["indexed"]["n"] == s["first_pass"]["n"] == 8 and s["brute_force"]["n"] == 2
    assert s["vector_matrix_mb"] > 0 and s["ann_graph_mb"] is None  # under 20,000 vectors: exact
    # Exact numpy scoring: its top 10 are as similar as the scan's 10th best, tied rows included.
    assert s["meaning_top10_vs_exact"] == 1.0
