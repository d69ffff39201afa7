"""`sightline bench rules`: how many object events one process evaluates per second.

N cameras with 10 rules each (crossings both ways and any way, enter, leave, two dwells, a
count and an absence, over two zones and two lines per camera), fed a busy generated stream:
walkers crossing at several speeds and some lingering, all cameras interleaved in media time.
Measured twice: the evaluator alone, and decode (JSON → `ObjectEvent`, as the worker does)
plus evaluation, in events per CPU second of this process (what one process does with a core to
itself; the wall-clock rate is printed too, and on a shared machine it also measures the others'
load). The target (default 50,000 events/s) applies to the evaluator alone.

For scale, the same run measures how fast the analyzer produces events: a generated clip
replayed in-process through ingest, the analyzer and the scripted colour server (no model
latency), events per second of wall time. Rules must keep up with many analyzers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bus.contracts import ObjectEvent
from bus.rulespec import LineSpec, RuleSpec, ZoneSpec
from configs.engine import OpenAIEngineConfig
from configs.settings import Settings
from rules.evaluator import Evaluator

TARGET = 50_000.0


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--tracks", type=int, default=20, help="walkers per camera")
    p.add_argument("--target", type=float, default=TARGET, help="events/s the evaluator must reach")
    p.add_argument("--repeat", type=int, default=3, help="best of this many timed passes")
    p.add_argument("--no-analyzer", action="store_true", help="skip measuring the analyzer's event rate")
    p.add_argument("--report", help="write the report here as JSON")


def rule_set(cameras: list[str]) -> tuple[list[ZoneSpec], list[LineSpec], list[RuleSpec]]:
    zones, lines, rules = [], [], []
    for c in cameras:
        zones.append(
            ZoneSpec(id=f"{c}-gate", camera=c, polygon=((0.6, 0.5), (0.8, 0.5), (0.8, 0.9), (0.6, 0.9)))
        )
        zones.append(
            ZoneSpec(id=f"{c}-desk", camera=c, polygon=((0.1, 0.1), (0.3, 0.1), (0.3, 0.3), (0.1, 0.3)))
        )
        lines.append(LineSpec(id=f"{c}-fence", camera=c, points=((0.5, 0.0), (0.5, 1.0)), inside=(0.75, 0.5)))
        lines.append(LineSpec(id=f"{c}-door", camera=c, points=((0.2, 0.4), (0.4, 0.9)), inside=(0.9, 0.5)))
        whens: list[dict[str, Any]] = [
            {"cross": {"line": f"{c}-fence", "direction": "in"}},
            {"cross": {"line": f"{c}-fence", "direction": "out"}},
            {"cross": {"line": f"{c}-door"}},
            {"enter": {"zone": f"{c}-gate"}},
            {"leave": {"zone": f"{c}-gate"}},
            {"dwell": {"zone": f"{c}-gate", "seconds": 10}},
            {"dwell": {"zone": f"{c}-desk", "seconds": 5}},
            {"count": {"zone": f"{c}-gate", "min": 2, "seconds": 3}},
            {"absent": {"zone": f"{c}-desk", "seconds": 20}},
            {"enter": {"zone": f"{c}-desk"}},
        ]
        rules += [
            RuleSpec.model_validate(
                {"id": f"{c}-r{k}", "query": "red", "when": w, "cooldown_s": 5 * (k == 0)}
            )
            for k, w in enumerate(whens)
        ]
    return zones, lines, rules


def stream(cameras: list[str], tracks: int) -> list[ObjectEvent]:
    from sightline.testing.rules_kit import scene

    events: list[ObjectEvent] = []
    for i, c in enumerate(cameras):
        events += scene(c, tracks, seed=i)
    return sorted(events, key=lambda e: (e.pts_s, e.camera_id, e.track_id))


def evaluate_rate(
    specs: tuple[list[ZoneSpec], list[LineSpec], list[RuleSpec]], events: list[ObjectEvent], repeat: int
) -> tuple[float, int, float]:
    """(events per CPU second, alerts, events per wall second), best of `repeat` passes.

    CPU time (`time.process_time`) is what one process gets done with a core to itself; on a
    shared machine the wall-clock rate also counts everyone else's load, so both are reported."""
    best, alerts, best_wall = 0.0, 0, 0.0
    for _ in range(max(repeat, 1)):
        ev = Evaluator(*specs)
        t, c = time.perf_counter(), time.process_time()
        alerts = sum(len(ev.feed(e)) for e in events)
        cpu, wall = time.process_time() - c, time.perf_counter() - t
        best = max(best, len(events) / max(cpu, 1e-9))
        best_wall = max(best_wall, len(events) / max(wall, 1e-9))
    return best, alerts, best_wall


def decode_rate(
    specs: tuple[list[ZoneSpec], list[LineSpec], list[RuleSpec]], raw: list[bytes], repeat: int
) -> float:
    best = 0.0
    for _ in range(max(repeat, 1)):
        ev = Evaluator(*specs)
        c = time.process_time()
        for r in raw:
            ev.feed(ObjectEvent.model_validate_json(r))
        best = max(best, len(raw) / max(time.process_time() - c, 1e-9))
    return best


def analyzer_rate(settings: Settings) -> float:
    """Events per second of wall time from a generated clip through ingest + analyzer (scripted engine)."""
    from sightline.replay.run import make_queries, run_replay
    from sightline.samples import Figure, generate_clip
    from sightline.testing.scripted_scenario import STANDIN_MODEL
    from sightline.testing.scripted_server import ScriptedServer

    red = (40, 40, 220)
    figures = [
        Figure(red, 0.5 + 2 * k, 6.0 + 2 * k, (0.1, 0.3 + 0.1 * k), (0.9, 0.4 + 0.1 * k)) for k in range(4)
    ]
    with (
        tempfile.TemporaryDirectory(prefix="sightline-bench-") as tmp,
        ScriptedServer({"mode": "colour"}) as glm,
    ):
        clip = generate_clip(Path(tmp) / "walkers.mp4", duration_s=15, fps=10, figures=figures)
        tracking = settings.analyzer.tracking.model_copy(
            update={"update_every_s": 0.0}
        )  # every answer an event
        s = settings.model_copy(
            update={
                "data_dir": tmp,
                "engine": OpenAIEngineConfig(base_url=glm.base_url, api_key="x", model=STANDIN_MODEL),
                "ingest": settings.ingest.model_copy(update={"sample_fps": 2.0, "max_width": 320}),
                "analyzer": settings.analyzer.model_copy(update={"tracking": tracking}),
            }
        )
        r = run_replay(clip, s, make_queries(["people in red"], [], 30.0))
    return len(r.events) / r.wall_s if r.wall_s else 0.0


def run(args: argparse.Namespace, settings: Settings) -> int:
    cameras = [f"cam{i:03d}" for i in range(args.cameras)]
    specs = rule_set(cameras)
    events = stream(cameras, args.tracks)
    raw = [e.to_json() for e in events]
    rate, alerts, wall_rate = evaluate_rate(specs, events, args.repeat)
    with_decode = decode_rate(specs, raw, args.repeat)
    produced = None if args.no_analyzer else analyzer_rate(settings)
    report = {
        "cameras": args.cameras,
        "rules": len(specs[2]),
        "events": len(events),
        "alerts": alerts,
        "evaluate_events_per_cpu_s": round(rate),
        "evaluate_events_per_wall_s": round(wall_rate),
        "decode_and_evaluate_events_per_cpu_s": round(with_decode),
        "analyzer_events_per_s": None if produced is None else round(produced, 1),
        "analyzers_one_rules_process_keeps_up_with": None if not produced else round(wall_rate / produced, 1),
        "target_events_per_s": args.target,
    }
    print(f"rules: {args.cameras} cameras x 10 rules, {len(events)} events, {alerts} alerts")
    print(f"  evaluate only        {rate:12,.0f} events per CPU second ({wall_rate:,.0f} per wall second)")
    print(f"  decode + evaluate    {with_decode:12,.0f} events per CPU second")
    if produced is not None:
        print(f"  analyzer produces    {produced:12,.1f} events/s (one replay, scripted engine, 2 fps)")
        ratio = wall_rate / produced if produced else float("inf")
        print(f"  ratio                {ratio:12,.1f} x (wall clock, both)")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
    if rate < args.target:
        print(f"FAILED: {rate:,.0f} events/s is below the target of {args.target:,.0f}")
        return 1
    print(f"PASSED: {rate:,.0f} events/s >= {args.target:,.0f}")
    return 0
