"""One bench run: broker, scripted engine, the three services, N cameras; then drain and collect.

Shared by `sightline bench pipeline` and `sightline bench soak` (see `sightline.bench.kit` for
what is measured and how).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import yaml

from bus.broker import EmbeddedBroker
from bus.contracts import CameraSpec, ControlMessage
from bus.kafka import ensure_topics
from bus.topics import Topics
from configs.engine import OpenAIEngineConfig
from configs.settings import Settings
from sightline.bench.kit import (
    QUERY,
    RED,
    VERBS,
    BenchPlan,
    Children,
    Recorder,
    RunData,
    committed,
    proc_sample,
    send_control,
    stored_count,
    stored_rows,
)
from sightline.samples import Figure, generate_clip
from sightline.testing.scripted_server import ScriptedServer


def bench_clip(directory: Path) -> Path:
    """10 s, 10 fps, 640×360: a red figure walks across from 0.5 s to 9.5 s (looped: a track per lap)."""
    path = directory / "bench_red_walk.mp4"
    if not path.exists():
        fig = Figure(RED, 0.5, 9.5, (0.1, 0.55), (0.9, 0.55))
        generate_clip(path.with_suffix(".tmp.mp4"), duration_s=10, fps=10, figures=[fig]).rename(path)
    return path


def bench_settings(
    settings: Settings, plan: BenchPlan, prefix: str, run_dir: Path, bootstrap: str, engine_url: str
) -> Settings:
    """The user's settings with the bench's private topics, groups, data dir and scripted engine."""
    engine = OpenAIEngineConfig(
        base_url=engine_url, model="glm-4.5v", api_key="bench", max_concurrency=plan.concurrency
    )
    upd = {
        "bus": settings.bus.model_copy(update={"bootstrap": bootstrap, "topic_prefix": prefix}),
        "ingest": settings.ingest.model_copy(update={"worker_id": f"{prefix}-ingest", "media_dirs": ()}),
        # min_hits=1 and update_every_s=0: every answered frame with the figure yields an event, and
        # every event names the frame that caused it (a start waits for no confirmation frame), so
        # each measured latency is one frame's trip, not the tracker's deliberate confirmation delay.
        "analyzer": settings.analyzer.model_copy(
            update={
                "group_id": f"{prefix}-analyzer",
                "max_concurrency": plan.concurrency,
                "tracking": settings.analyzer.tracking.model_copy(
                    update={"min_hits": 1, "update_every_s": 0.0}
                ),
            }
        ),
        "store": settings.store.model_copy(update={"group_id": f"{prefix}-sink"}),
        "engine": engine,
        "data_dir": str(run_dir),
        "log_level": "WARNING",
    }
    return settings.model_copy(update=upd)


@contextlib.contextmanager
def _broker(bootstrap: str | None, run_dir: Path) -> Iterator[tuple[str, int | None]]:
    if bootstrap:
        yield bootstrap, None
        return
    with EmbeddedBroker(log_path=run_dir / "logs" / "broker.log") as broker:
        assert broker.proc is not None
        yield broker.bootstrap, broker.proc.pid


def run_bench(plan: BenchPlan, settings: Settings, label: str = "bench") -> RunData:
    """Start everything, play the cameras for `plan.seconds` (warm-up first), drain, stop, collect."""
    prefix = f"{label}-{uuid.uuid4().hex[:8]}"
    run_dir = Path(settings.data_dir).resolve() / "bench" / prefix
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    data = RunData(plan=plan, run_dir=run_dir)
    clip = Path(plan.video) if plan.video else bench_clip(Path(settings.data_dir).resolve() / "bench")
    scenario = {"mode": "colour", "latency_s": plan.engine_latency_ms / 1000}
    with _broker(settings.bus.bootstrap, run_dir) as (bootstrap, broker_pid), ScriptedServer(scenario) as glm:
        cfg = bench_settings(settings, plan, prefix, run_dir, bootstrap, glm.base_url)
        topics = Topics.from_config(cfg.bus)
        ensure_topics(bootstrap, topics.all(), cfg.bus.partitions, cfg.bus.replication)
        effective = run_dir / "effective-config.yaml"
        effective.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        recorder = Recorder(bootstrap, topics, data)
        recorder.start()
        children = Children(effective, run_dir / "logs")
        cams = [f"cam{i:02d}" for i in range(plan.cameras)]
        try:
            for verb in VERBS:
                children.start(verb)
            msgs = [
                ControlMessage(
                    op="upsert",
                    kind="camera",
                    id=c,
                    camera=CameraSpec(
                        id=c, url=str(clip), realtime=True, loop=True, sample_fps=plan.sample_fps
                    ),
                )
                for c in cams
            ]
            send_control(
                bootstrap, topics, [ControlMessage(op="upsert", kind="query", id=QUERY.id, query=QUERY)]
            )
            # One camera until the first event is stored: the services are up and the analyzer has its
            # partitions, so the others do not start with a backlog that only measures start-up.
            send_control(bootstrap, topics, msgs[:1])
            _wait_first_event(plan, data, recorder, children, glm)
            # The rest spread over one sample interval, as independent cameras would be.
            send_control(bootstrap, topics, msgs[1:], gap_s=1 / (plan.sample_fps * plan.cameras))
            pids = {v: p.pid for v, p in children.procs.items()} | {"bench": os.getpid()}
            _play(plan, data, children, glm, pids | ({"broker": broker_pid} if broker_pid else {}))
            send_control(bootstrap, topics, [ControlMessage(op="delete", kind="camera", id=c) for c in cams])
            _drain(plan, data, cfg, bootstrap, topics, cams, glm)
        finally:
            data.exit_codes = children.stop()
            time.sleep(1.5)  # the services' last status messages (final counters) reach the recorder
            recorder.halt.set()
            recorder.join(10)
            _count_calls(glm, data)
        data.stored = stored_rows(cfg.store_url, cams)
        if any(code != 0 for code in data.exit_codes.values()):
            print(f"warning: a service exited badly {data.exit_codes}\n{children.tail()}", file=sys.stderr)
    return data


def _count_calls(glm: ScriptedServer, data: RunData) -> None:
    """Count the engine's requests and let go of their bodies (the server keeps every one it gets)."""
    requests, headers = glm.state.requests, glm.state.headers
    n = len(requests)
    del requests[:n]  # one operation under the GIL: a request appended meanwhile waits for the next count
    del headers[: len(headers)]
    data.calls.append((time.time(), (data.calls[-1][1] if data.calls else 0) + n))
    data.max_in_flight = glm.max_in_flight


def _wait_first_event(
    plan: BenchPlan, data: RunData, recorder: Recorder, children: Children, glm: ScriptedServer
) -> None:
    started = time.monotonic()
    while recorder.first_event is None:
        if dead := children.dead():
            raise RuntimeError(f"{dead} exited before the first event\n{children.tail()}")
        if time.monotonic() - started > plan.start_timeout_s:
            raise TimeoutError(f"no event within {plan.start_timeout_s:.0f}s\n{children.tail()}")
        _count_calls(glm, data)
        time.sleep(0.2)
    measured = plan.seconds - plan.warmup_s
    print(
        f"first event after {time.monotonic() - started:.1f}s; starting {plan.cameras} cameras × "
        f"{plan.sample_fps:g} fps: warm-up {plan.warmup_s:.0f}s, then measure {measured:.0f}s",
        file=sys.stderr,
    )


def _play(
    plan: BenchPlan, data: RunData, children: Children, glm: ScriptedServer, pids: dict[str, int]
) -> None:
    now = time.time()
    data.window = (now + plan.warmup_s, now + plan.seconds)
    next_sample = next_progress = 0.0
    while (now := time.time()) < data.window[1]:
        if dead := children.dead():
            raise RuntimeError(f"{dead} died during the run\n{children.tail()}")
        _count_calls(glm, data)
        if now >= next_sample:
            for name, pid in pids.items():
                if (sample := proc_sample(pid)) is not None:
                    data.resources.append({"t": now, "proc": name, **sample})
            data.loadavg.append(os.getloadavg()[0])  # others' work on the same cores shows up here
            next_sample = now + plan.resource_every_s
        if now >= next_progress:
            _progress(data, now)
            next_progress = now + plan.progress_every_s
        time.sleep(1.0)


def _progress(data: RunData, now: float) -> None:
    t0, t1 = data.window
    phase = f"warm-up {now - t0:+.0f}s" if now < t0 else f"{now - t0:.0f}/{t1 - t0:.0f}s"
    rss = {r["proc"]: r["rss"] for r in data.resources if r["t"] >= now - 10}
    mem = " ".join(f"{k} {v / 1e6:.0f}MB" for k, v in rss.items() if k in VERBS)
    calls = data.calls[-1][1] if data.calls else 0
    print(
        f"[{phase}] frames {len(data.published)}  engine calls {calls}  events {len(data.produced)}  {mem}",
        file=sys.stderr,
        flush=True,
    )


def _drain(
    plan: BenchPlan,
    data: RunData,
    cfg: Settings,
    bootstrap: str,
    topics: Topics,
    cams: list[str],
    glm: ScriptedServer,
) -> None:
    """Wait until the analyzer committed every frame (and stop marker) and the sink stored every event."""
    deadline = time.monotonic() + plan.drain_timeout_s
    while True:
        _count_calls(glm, data)
        stopped = all(data.cameras.get(c) and data.cameras[c].state in ("stopped", "failed") for c in cams)
        data.committed = committed(bootstrap, cfg.analyzer.group_id, topics.frames)
        analyzed = stopped and data.committed >= data.frame_records
        if analyzed and stored_count(cfg.store_url, cams) >= len(data.produced):
            data.drained = True
            return
        if time.monotonic() > deadline:
            print(f"drain: gave up after {plan.drain_timeout_s:.0f}s", file=sys.stderr)
            return
        time.sleep(0.5)
