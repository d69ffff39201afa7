"""`sightline bench pipeline` and `bench soak`, briefly: the harness measures what it says it measures.

These assert behaviour, not speed: every stored event gets a latency, stages are ordered and add
up, nothing is dropped, resources are sampled, the reports have their keys. The speed targets
live in the benches themselves (their exit code), never here: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from configs import Settings
from sightline.bench import pipeline as bench_pipeline
from sightline.bench import soak as bench_soak
from sightline.bench.kit import BenchPlan, RunData
from sightline.bench.stats import RESOLUTION_S, event_latencies

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPORT_KEYS = {
    "bench",
    "config",
    "window_s",
    "events",
    "latency_ms",
    "throughput",
    "drops",
    "drained",
    "capacity",
    "resources",
    "exit_codes",
    "targets",
    "ok",
}
SERVICES = ("ingest", "analyze", "sink")


def _args(report: Path, cameras: int, seconds: float) -> argparse.Namespace:
    return argparse.Namespace(
        cameras=cameras, seconds=seconds, engine_latency_ms=0.0, concurrency=8, video=None, report=str(report)
    )


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any) -> dict[str, RunData]:
    """Keep the RunData the verb measured, to check it event by event."""
    seen: dict[str, RunData] = {}
    real = module.run_bench

    def spy(plan: BenchPlan, settings: Settings, label: str) -> RunData:
        seen["data"] = real(plan, settings, label)
        return seen["data"]

    monkeypatch.setattr(module, "run_bench", spy)
    return seen


def test_pipeline_bench_times_every_stored_event_stage_by_stage_and_drops_nothing(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _spy(monkeypatch, bench_pipeline)
    report = tmp_path / "pipeline.json"
    settings = make_settings(bus={"bootstrap": kafka_bootstrap})
    rc = bench_pipeline.run(_args(report, cameras=2, seconds=10), settings)
    assert rc in (0, 1)  # 1 only if a speed target was missed, which is the bench's business

    rep = json.loads(report.read_text())
    assert rep.keys() >= REPORT_KEYS
    assert rep["exit_codes"] == {v: 0 for v in SERVICES}
    assert rep["drained"] and rep["drops"] == {}
    assert set(rep["targets"]) >= {"end_to_end p50 ms", "end_to_end p99 ms", "drops"}
    assert rep["latency_ms"]["end_to_end"]["n"] == rep["events"]["measured"] > 0

    data = seen["data"]
    lat = event_latencies(data)
    assert len(lat) == len(data.stored) == len(data.produced) > 0
    assert {r["camera_id"] for r in lat} == {"cam00", "cam01"}
    for r in lat:
        assert r["end_to_end"] >= 0, r
        if r["phase"] == "end" and "publish" not in r:
            continue  # closed by the camera's stop marker, not by a frame: end to end only
        assert "publish" in r, f"a {r['phase']} event was not joined to the frame that caused it: {r}"
        tol = RESOLUTION_S
        assert r["capture"] - tol <= r["published"] <= r["produced"] + tol <= r["stored"] + 2 * tol, r
        assert all(r[s] >= 0 for s in ("publish", "analyzer", "engine", "store")), r
        parts = r["publish"] + r["analyzer"] + r["engine"] + r["store"]
        assert parts == pytest.approx(r["end_to_end"], abs=3 * tol), r


def test_soak_bench_samples_rss_and_fds_of_every_service_and_writes_both_reports(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    report = tmp_path / "soak.json"
    settings = make_settings(bus={"bootstrap": kafka_bootstrap})
    rc = bench_soak.run(_args(report, cameras=2, seconds=15), settings)
    assert rc in (0, 1)

    rep = json.loads(report.read_text())
    assert rep.keys() >= REPORT_KEYS | {"minutes"}
    assert rep["exit_codes"] == {v: 0 for v in SERVICES}
    assert rep["drops"] == {}
    assert len(rep["minutes"]) == 2  # a short soak compares its two halves
    assert all(m["frames_per_s"] > 0 for m in rep["minutes"])
    for verb in SERVICES:
        r = rep["resources"][verb]
        assert r["samples"] >= 5 and r["rss_mb_warm"] > 0 and r["fds_warm"] > 0, r
        assert r["fd_growth"] < 50, f"{verb} fds grew without bound in 15 s: {r}"
        assert {f"{verb} RSS growth", f"{verb} fd growth"} <= rep["targets"].keys()
    md = report.with_suffix(".md").read_text()
    assert "| process |" in md and "| target |" in md and "analyze" in md
