"""`sightline bench pipeline`: N cameras × 2 fps through the real broker and services.

Prints latency per stage and end to end (frame capture → event stored) p50/p99, throughput and
drops. With the default zero-latency scripted engine it checks the targets for a 2-core machine
at 16 cameras (p50 ≤ 100 ms, p99 ≤ 500 ms, no drops) and exits 1 when one is missed. With
`--engine-latency-ms` it measures capacity instead: how many engine calls/s, so how many
camera-queries, one analyzer worker sustains at `--concurrency`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from configs.settings import Settings
from sightline.bench.kit import BenchPlan
from sightline.bench.stack import run_bench
from sightline.bench.stats import print_report, print_targets, report, target

CAMERAS, SECONDS, WARMUP_S = 16, 20.0, 3.0
TARGET_P50_MS, TARGET_P99_MS = 100.0, 500.0


def add_args(p: argparse.ArgumentParser, cameras: int = CAMERAS, seconds: float = SECONDS) -> None:
    """The stack benches' arguments (pipeline and soak share them, with their own defaults)."""
    p.add_argument("--cameras", type=int, default=cameras, help=f"cameras at 2 fps (default {cameras})")
    p.add_argument("--seconds", type=float, default=seconds, help=f"run length (default {seconds:g})")
    p.add_argument("--engine-latency-ms", type=float, default=0.0, help="scripted engine delay per call")
    p.add_argument("--concurrency", type=int, default=8, help="analyzer engine concurrency")
    p.add_argument("--video", help="input clip (default: generated)")
    p.add_argument("--report", help="write the report here as JSON")


def plan_from_args(args: argparse.Namespace, warmup_s: float) -> BenchPlan:
    return BenchPlan(
        cameras=args.cameras,
        seconds=args.seconds,
        warmup_s=warmup_s,
        engine_latency_ms=args.engine_latency_ms,
        concurrency=args.concurrency,
        video=args.video,
    )


def pipeline_targets(rep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    e2e = rep["latency_ms"]["end_to_end"]
    return {
        "end_to_end p50 ms": target(e2e.get("p50", float("inf")), TARGET_P50_MS),
        "end_to_end p99 ms": target(e2e.get("p99", float("inf")), TARGET_P99_MS),
        "drops": target(sum(rep["drops"].values()), 0),
        "events measured": target(rep["events"]["measured"], 1, at_most=False),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    plan = plan_from_args(args, WARMUP_S)
    data = run_bench(plan, settings, "pipeline")
    rep = report(data, "pipeline")
    print_report(rep)
    services_ok = all(code == 0 for code in rep["exit_codes"].values())
    if plan.engine_latency_ms:
        # A slow engine is a capacity run: latency then measures the queue, not the pipeline.
        print("latency targets apply to --engine-latency-ms 0; this run measures capacity")
        rep["targets"], ok = {}, services_ok and rep["events"]["measured"] > 0
    else:
        rep["targets"] = pipeline_targets(rep)
        ok = print_targets(rep["targets"]) and services_ok
    if not services_ok:
        print(f"a service exited badly: {rep['exit_codes']} (logs in {rep['run_dir']}/logs)")
    rep["ok"] = ok
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(rep, indent=2))
    return 0 if ok else 1
