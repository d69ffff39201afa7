"""`sightline bench soak`: 32 cameras for 5 minutes through the full stack with the scripted engine.

After a warm-up, checks that throughput holds (the last minute within 10% of the first),
that each service's RSS stays flat (< 10% growth) and that no file descriptors leak; reports
p99 latency per minute. Writes a JSON report (`--report`, default artifacts/soak.json) and a
Markdown summary next to it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from configs.settings import Settings
from sightline.bench import pipeline
from sightline.bench.stack import run_bench
from sightline.bench.stats import buckets, event_latencies, print_report, print_targets, report, target

CAMERAS, SECONDS = 32, 300.0
TARGET_RSS_GROWTH = 0.10
TARGET_HELD = 0.90  # last bucket's throughput over the first's
FD_SLACK = 4  # a socket reconnecting or a file being reopened at the sample instant is not a leak
DEFAULT_REPORT = "artifacts/soak.json"


def soak_targets(rep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for proc, r in rep["resources"].items():
        if r["service"]:
            out[f"{proc} RSS growth"] = target(r["rss_growth"], TARGET_RSS_GROWTH)
            out[f"{proc} fd growth"] = target(r["fd_growth"], FD_SLACK)
    first, last = rep["minutes"][0], rep["minutes"][-1]
    for key in ("frames_per_s", "events_stored_per_s"):
        held = last[key] / first[key] if first[key] else 0.0
        out[f"{key} held"] = target(round(held, 3), TARGET_HELD, at_most=False)
    out["drops"] = target(sum(rep["drops"].values()), 0)
    return out


def markdown(rep: dict[str, Any]) -> str:
    c, lat = rep["config"], rep["latency_ms"]["end_to_end"]
    lines = [
        f"# Soak: {c['cameras']} cameras × {c['sample_fps']:g} fps, {c['seconds']:.0f} s "
        f"(warm-up {c['warmup_s']:.0f} s), engine latency {c['engine_latency_ms']:g} ms",
        "",
        f"Result: **{'targets met' if rep['ok'] else 'TARGETS MISSED'}**. End to end (capture → stored): "
        f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms over {lat.get('n', 0)} events.",
        "",
        "| window | frames/s | engine calls/s | events stored/s | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for m in rep["minutes"]:
        lines.append(
            f"| {m['from_s']:.0f}–{m['to_s']:.0f} s | {m['frames_per_s']} | {m['engine_calls_per_s']} | "
            f"{m['events_stored_per_s']} | {m['p99_ms']} |"
        )
    lines += [
        "",
        "| process | RSS first minute MB | RSS last minute MB | growth | RSS peak MB | fds warm | fds end "
        "| fds max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for proc, r in rep["resources"].items():
        lines.append(
            f"| {proc} | {r['rss_mb_warm']} | {r['rss_mb_end']} | {r['rss_growth']:.1%} | "
            f"{r['rss_mb_max']} | {r['fds_warm']} | {r['fds_end']} | {r['fds_max']} |"
        )
    lines += ["", "| target | value | limit | ratio | ok |", "|---|---|---|---|---|"]
    for name, t in rep["targets"].items():
        lines.append(
            f"| {name} | {t['value']} | {t['target']} | {t['ratio']} | {'yes' if t['ok'] else 'NO'} |"
        )
    lines += ["", f"Drops: {rep['drops'] or 'none'}. Run directory: `{rep['run_dir']}`.", ""]
    return "\n".join(lines)


def add_args(p: argparse.ArgumentParser) -> None:
    pipeline.add_args(p, cameras=CAMERAS, seconds=SECONDS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    plan = pipeline.plan_from_args(args, warmup_s=min(60.0, args.seconds / 5))
    seconds = plan.seconds
    plan = plan.model_copy(update={"resource_every_s": min(5.0, max(1.0, seconds / 30))})
    data = run_bench(plan, settings, "soak")
    rep = report(data, "soak")
    measured = plan.seconds - plan.warmup_s
    # Minutes when there is room for two; a short run compares its two halves instead.
    rep["minutes"] = buckets(data, event_latencies(data), 60.0 if measured >= 120 else measured / 2)
    print_report(rep)
    print(
        "  per window: "
        + ", ".join(f"{m['events_stored_per_s']}/s p99 {m['p99_ms']}ms" for m in rep["minutes"])
    )
    for proc, r in rep["resources"].items():
        print(
            f"  {proc:<8} RSS {r['rss_mb_warm']} -> {r['rss_mb_end']} MB ({r['rss_growth']:+.1%}; "
            f"peak {r['rss_mb_max']}), "
            f"fds {r['fds_warm']} -> {r['fds_end']} (max {r['fds_max']}), threads {r['threads_end']}"
        )
    t0 = data.window[0]
    rep["samples"] = [  # the raw series, to tell a leak (steady climb) from a backlog (rise and fall)
        {"t": round(r["t"] - t0, 1), "proc": r["proc"], "rss_mb": round(r["rss"] / 1e6, 1), "fds": r["fds"]}
        for r in data.resources
    ]
    rep["targets"] = soak_targets(rep)
    ok = print_targets(rep["targets"]) and all(code == 0 for code in rep["exit_codes"].values())
    rep["ok"] = ok
    path = Path(args.report or DEFAULT_REPORT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rep, indent=2))
    path.with_suffix(".md").write_text(markdown(rep))
    print(f"report: {path} and {path.with_suffix('.md')}")
    return 0 if ok else 1
