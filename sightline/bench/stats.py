"""Figures from a bench run (`benchkit.RunData`): latency per stage, throughput, drops, resources."""

from __future__ import annotations

import os
from datetime import datetime
from statistics import median
from typing import Any

import numpy as np

from sightline.bench.kit import VERBS, RunData

STAGES = ("publish", "analyzer", "engine", "store", "end_to_end")
STAGE_NAMES = {
    "publish": "capture → published",
    "analyzer": "published → produced, less engine",
    "engine": "engine call",
    "store": "produced → stored",
    "end_to_end": "capture → stored",
}
# Kafka timestamps are whole milliseconds: a stage that short may come out a fraction below zero.
RESOLUTION_S = 0.001
# Analyzer counters that mean a frame or an answer was lost (the rest are planned skips).
ANALYZER_DROPS = ("skipped_lag", "dead_lettered", "engine_errors", "engine_refused")


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _clamp(x: float) -> float:
    return max(x, 0.0) if x > -RESOLUTION_S else x


def event_latencies(data: RunData) -> list[dict[str, Any]]:
    """One record per stored event: the trigger frame's capture time and every stage that can be joined.

    The trigger is the frame the analyzer was answering when it made the event: `wall_ts` for
    start/update, `closed_at` for an end (the frame that showed the track lost, or the stop).
    """
    out = []
    for ev in data.stored:
        trigger = _epoch(ev.get("closed_at")) if ev["phase"] == "end" and ev.get("closed_at") else None
        trigger = trigger if trigger is not None else _epoch(ev["wall_ts"])
        assert trigger is not None
        rec: dict[str, Any] = {
            "event_id": ev["event_id"],
            "camera_id": ev["camera_id"],
            "phase": ev["phase"],
            "capture": trigger,
            "stored": ev["received_at"],
            "end_to_end": _clamp(ev["received_at"] - trigger),
        }
        published = data.published.get((ev["camera_id"], trigger))
        produced = data.produced.get(ev["event_id"])
        if published is not None and produced is not None:
            engine = float(ev.get("latency_ms") or 0.0) / 1000
            rec |= {
                "published": published,
                "produced": produced,
                "publish": _clamp(published - trigger),
                "engine": engine,
                "analyzer": _clamp(produced - published - engine),
                "store": _clamp(ev["received_at"] - produced),
            }
        out.append(rec)
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values) * 1000
    return {
        "n": len(values),
        "p50": round(float(np.percentile(a, 50)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
        "max": round(float(a.max()), 1),
        "mean": round(float(a.mean()), 1),
    }


def in_window(lat: list[dict[str, Any]], t0: float, t1: float) -> list[dict[str, Any]]:
    return [r for r in lat if t0 <= r["capture"] < t1]


def latency_table(lat: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {s: percentiles([r[s] for r in lat if s in r]) for s in STAGES}


def calls_between(data: RunData, t0: float, t1: float) -> int:
    """Engine requests counted between two wall times (the counts are sampled about once a second)."""

    def at(t: float) -> int:
        before = [n for ts, n in data.calls if ts <= t]
        return before[-1] if before else 0

    return at(t1) - at(t0)


def throughput(data: RunData, t0: float, t1: float) -> dict[str, float]:
    span = max(t1 - t0, 1e-9)
    frames = sum(1 for (_, cap) in data.published if t0 <= cap < t1)
    stored = sum(1 for ev in data.stored if t0 <= ev["received_at"] < t1)
    return {
        "seconds": round(span, 1),
        "frames_per_s": round(frames / span, 2),
        "engine_calls_per_s": round(calls_between(data, t0, t1) / span, 2),
        "events_stored_per_s": round(stored / span, 2),
    }


def drops(data: RunData) -> dict[str, int]:
    """Frames and events lost anywhere: by ingest's queues, by the analyzer, between produce and store."""
    out: dict[str, int] = {}
    for st in data.cameras.values():
        for reason, n in st.drops.items():
            out[f"ingest_{reason}"] = out.get(f"ingest_{reason}", 0) + n
    for st in data.analyzers.values():
        for key in ANALYZER_DROPS:
            if n := int(st.counters.get(key, 0)):
                out[f"analyzer_{key}"] = out.get(f"analyzer_{key}", 0) + n
    if missing := max(0, data.frame_records - data.committed):
        out["frames_not_analyzed"] = missing
    stored = {ev["event_id"] for ev in data.stored}
    if missing := len(set(data.produced) - stored):
        out["events_not_stored"] = missing
    return out


def capacity(data: RunData, tput: dict[str, float], engine_mean_ms: float) -> dict[str, Any]:
    """How many camera-queries (one grounding query on one camera at the sample rate) the worker sustains."""
    plan = data.plan
    calls_per_s = tput["engine_calls_per_s"]
    # What ingest really published (one query: a call per frame), not cameras × fps: looped files run
    # a little fast, and a worker that kept up with the nominal rate may still fall behind the real one.
    offered = max(tput["frames_per_s"], plan.cameras * plan.sample_fps)
    saturated = calls_per_s < 0.95 * offered
    ceiling = plan.concurrency / (plan.engine_latency_ms / 1000) if plan.engine_latency_ms else None
    return {
        "offered_calls_per_s": offered,
        "sustained_calls_per_s": calls_per_s,
        "saturated": saturated,
        "camera_queries_sustained": round(calls_per_s / plan.sample_fps, 1),
        "at_least": not saturated,  # not saturated: the worker could take more than was offered
        "concurrency_ceiling_calls_per_s": ceiling,
        "max_in_flight": data.max_in_flight,
        # Little's law: how much of the concurrency budget was used on average.
        "mean_in_flight": round(calls_per_s * engine_mean_ms / 1000, 1),
    }


def resources(data: RunData, after: float) -> dict[str, dict[str, Any]]:
    """Per process: RSS and fd counts after `after` (the warm-up), at the end, and at most.

    RSS growth compares the median of the last stretch of samples with the median of the first
    after warm-up (each a quarter of the span, at most a minute): a leak keeps growing, while a
    peak from a burst of work in flight comes and goes — the peak is reported beside it.
    """
    out: dict[str, dict[str, Any]] = {}
    for proc in sorted({r["proc"] for r in data.resources}):
        rows = [r for r in data.resources if r["proc"] == proc]
        warm = [r for r in rows if r["t"] >= after] or rows[-1:]
        first, last = warm[0], warm[-1]
        stretch = min(60.0, (last["t"] - first["t"]) / 4)
        start = median(r["rss"] for r in warm if r["t"] <= first["t"] + stretch)
        end = median(r["rss"] for r in warm if r["t"] >= last["t"] - stretch)
        out[proc] = {
            "samples": len(rows),
            "rss_mb_warm": round(start / 1e6, 1),
            "rss_mb_end": round(end / 1e6, 1),
            "rss_mb_max": round(max(r["rss"] for r in warm) / 1e6, 1),
            "rss_growth": round((end - start) / max(start, 1), 4),
            "fds_warm": first["fds"],
            "fds_end": last["fds"],
            "fds_max": max(r["fds"] for r in warm),
            "fd_growth": last["fds"] - first["fds"],
            "threads_end": last["threads"],
            # Share of one core over the measured span: a service near 1.0 is bound by its own CPU.
            "cpu_cores": round((last["cpu_s"] - first["cpu_s"]) / max(last["t"] - first["t"], 1e-9), 2),
            "service": proc in VERBS,
        }
    return out


def buckets(data: RunData, lat: list[dict[str, Any]], bucket_s: float) -> list[dict[str, Any]]:
    """Throughput and p99 per bucket (a minute in the soak) across the measured window."""
    t0, t1 = data.window
    out = []
    n = max(1, int((t1 - t0) // bucket_s))
    for i in range(n):
        a, b = t0 + i * bucket_s, t0 + (i + 1) * bucket_s
        row: dict[str, Any] = {"from_s": round(a - t0, 1), "to_s": round(b - t0, 1), **throughput(data, a, b)}
        row["p99_ms"] = percentiles([r["end_to_end"] for r in in_window(lat, a, b)]).get("p99")
        out.append(row)
    return out


def target(value: float, limit: float, *, at_most: bool = True) -> dict[str, Any]:
    ratio = value / limit if limit else (0.0 if value == 0 else float("inf"))
    ok = value <= limit if at_most else value >= limit
    return {"value": value, "target": limit, "ratio": round(ratio, 3), "ok": ok}


def print_latency(table: dict[str, dict[str, float]]) -> None:
    print(f"  {'stage':<36} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for stage in STAGES:
        row = table[stage]
        if row.get("n"):
            p50, p99, top = row["p50"], row["p99"], row["max"]
            print(f"  {STAGE_NAMES[stage]:<36} {row['n']:>6} {p50:>9.1f} {p99:>9.1f} {top:>9.1f}")
        else:
            print(f"  {STAGE_NAMES[stage]:<36} {0:>6} {'-':>9} {'-':>9} {'-':>9}")


def print_targets(targets: dict[str, dict[str, Any]]) -> bool:
    for name, t in targets.items():
        mark = "ok" if t["ok"] else "MISSED"
        print(f"  {name:<28} {t['value']:>10} vs {t['target']:<8} ratio {t['ratio']:>6.2f}  {mark}")
    ok = all(t["ok"] for t in targets.values())
    print("targets met" if ok else "TARGETS MISSED")
    return ok


def report(data: RunData, bench: str) -> dict[str, Any]:
    """The figures both benches print and write; each adds its own targets."""
    t0, t1 = data.window
    lat = event_latencies(data)
    measured = in_window(lat, t0, t1)
    tput = throughput(data, t0, t1)
    table = latency_table(measured)
    return {
        "bench": bench,
        "config": data.plan.model_dump(),
        "run_dir": str(data.run_dir),
        "window_s": round(t1 - t0, 1),
        "events": {
            "stored": len(data.stored),
            "produced": len(data.produced),
            "with_latency": len(lat),
            "with_stages": sum(1 for r in lat if "publish" in r),
            "measured": len(measured),
        },
        "latency_ms": table,
        "throughput": tput,
        "drops": drops(data),
        "drained": data.drained,
        "capacity": capacity(data, tput, table["engine"].get("mean", 0.0)),
        "resources": resources(data, t0),
        "machine": {
            "cores": os.cpu_count(),
            "loadavg_1m_mean": round(sum(data.loadavg) / len(data.loadavg), 2) if data.loadavg else None,
        },
        "exit_codes": data.exit_codes,
    }


def print_report(rep: dict[str, Any]) -> None:
    c, t, cap = rep["config"], rep["throughput"], rep["capacity"]
    print(
        f"\n{rep['bench']}: {c['cameras']} cameras × {c['sample_fps']:g} fps, engine latency "
        f"{c['engine_latency_ms']:g} ms, concurrency {c['concurrency']}, measured {rep['window_s']:.0f}s "
        f"({rep['events']['measured']} events)"
    )
    print_latency(rep["latency_ms"])
    print(
        f"  throughput: {t['frames_per_s']} frames/s published, {t['engine_calls_per_s']} engine calls/s, "
        f"{t['events_stored_per_s']} events/s stored"
    )
    more = "at least " if cap["at_least"] else ""
    print(
        f"  engine: {cap['sustained_calls_per_s']} calls/s sustained, {cap['offered_calls_per_s']:g} offered "
        f"(in flight: mean {cap['mean_in_flight']}, max {cap['max_in_flight']})\n"
        f"  -> one analyzer worker sustains {more}{cap['camera_queries_sustained']} camera-queries "
        f"at {c['sample_fps']:g} fps"
    )
    drops_ = rep["drops"]
    print(f"  drops: {sum(drops_.values())} {drops_ if drops_ else ''}  drained: {rep['drained']}")
    cpu = ", ".join(f"{p} {r['cpu_cores']:.2f}" for p, r in rep["resources"].items())
    m = rep["machine"]
    print(f"  CPU (cores used): {cpu}; machine: {m['cores']} cores, load average {m['loadavg_1m_mean']}")
