"""Soak benchmark: N cameras (looping files played in real time, and RTSP) in one ingest process.

Measures, after a warm-up: RSS growth of the process (target < 10%) and each camera's published
frame rate as seen on the frames topic (target within 5% of its sample_fps).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bus.broker import EmbeddedBroker, free_port
from bus.contracts import CameraSpec
from bus.kafka import decode_end_of_stream, decode_frame
from bus.topics import Topics
from configs.settings import Settings
from sightline.testing.ingest_kit import RtspServer, TopicReader, register, rtsp_server_available

TARGET_RSS_GROWTH = 0.10
TARGET_FPS_ERROR = 0.05
SAMPLE_FPS = 2.0


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _soak_clip(settings: Settings) -> Path:
    from sightline.samples import sample_video

    return sample_video(settings.data_dir)  # vtest.avi when installed, else a generated 768x576 clip


class FrameCounter(threading.Thread):
    """Counts frames per camera as they arrive on the frames topic, inside a time window."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="soak-reader", daemon=True)
        self.reader = TopicReader(bootstrap, topic)
        self.window: tuple[float, float] = (float("inf"), float("inf"))
        self.counts: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for r in self.reader.records(200):
                if decode_end_of_stream(r) is not None:
                    continue
                meta, _ = decode_frame(r)
                self.total[meta.camera_id] += 1
                # Capture time, not arrival: fetch batching would blur the window's edges.
                if self.window[0] <= meta.wall_ts.timestamp() < self.window[1]:
                    self.counts[meta.camera_id] += 1
        self.reader.close()


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cameras",
        type=int,
        default=8,
        help="cameras; 3 in 8 over RTSP when the test server is there, the rest looping files (default 8)",
    )
    p.add_argument("--seconds", type=float, default=60.0, help="run length (default 60)")
    p.add_argument("--report", help="write the report here as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    seconds, n = args.seconds, args.cameras
    warmup = min(15.0, seconds / 4)
    with contextlib.ExitStack() as stack:
        bootstrap = settings.bus.bootstrap
        if not bootstrap:
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
        prefix = f"soak{uuid.uuid4().hex[:8]}"
        settings = settings.model_copy(
            update={
                "bus": settings.bus.model_copy(update={"bootstrap": bootstrap, "topic_prefix": prefix}),
                "ingest": settings.ingest.model_copy(
                    update={"worker_id": f"ingest-{prefix}", "media_dirs": ()}
                ),
            }
        )
        topics = Topics.from_config(settings.bus)
        n_rtsp = max(1, n * 3 // 8) if rtsp_server_available() else 0
        specs = [
            CameraSpec(
                id=f"file{i}", url=str(_soak_clip(settings)), realtime=True, loop=True, sample_fps=SAMPLE_FPS
            )
            for i in range(n - n_rtsp)
        ]
        if n_rtsp:
            server = stack.enter_context(RtspServer(free_port()))
            specs += [CameraSpec(id=f"rtsp{i}", url=server.url, sample_fps=SAMPLE_FPS) for i in range(n_rtsp)]
        else:
            print("RTSP test server not available: files only")
        for spec in specs:
            register(bootstrap, topics, spec)
        return _measure(settings, bootstrap, topics, specs, seconds, warmup, args)
    return 1  # pragma: no cover - ExitStack does not swallow exceptions


def _measure(
    settings: Settings,
    bootstrap: str,
    topics: Topics,
    specs: list[CameraSpec],
    seconds: float,
    warmup: float,
    args: argparse.Namespace,
) -> int:
    from ingest.service import run

    counter = FrameCounter(bootstrap, topics.frames)
    counter.start()
    stop = threading.Event()
    service = threading.Thread(target=run, args=(settings, stop), name="soak-ingest", daemon=True)
    t0 = time.monotonic()
    service.start()
    rss: list[tuple[float, int]] = []
    window = (t0 + warmup, t0 + seconds)
    wall0 = time.time() - t0
    counter.window = (wall0 + window[0], wall0 + window[1])
    print(f"soak: {len(specs)} cameras for {seconds:.0f}s (warm-up {warmup:.0f}s) ...", flush=True)
    while (now := time.monotonic()) < window[1] + 1.0:
        rss.append((now - t0, rss_bytes()))
        time.sleep(1.0)
    stop.set()
    service.join(15)
    counter.stop.set()
    counter.join(5)
    span = window[1] - window[0]
    warm_rss = next(r for t, r in rss if t >= warmup)
    end_rss = max(r for t, r in rss if t >= warmup)
    growth = (end_rss - warm_rss) / warm_rss
    rows = []
    ok = growth < TARGET_RSS_GROWTH
    for spec in specs:
        fps = counter.counts[spec.id] / span
        err = abs(fps - SAMPLE_FPS) / SAMPLE_FPS
        ok = ok and err <= TARGET_FPS_ERROR
        rows.append(
            {"camera": spec.id, "url": spec.url, "fps": fps, "error": err, "frames": counter.total[spec.id]}
        )
        total = counter.total[spec.id]
        print(f"  {spec.id:<8} {fps:6.3f} fps (target {SAMPLE_FPS}, error {err:.1%})  {total} frames")
    print(f"RSS after warm-up {warm_rss / 1e6:.1f} MB, max after {end_rss / 1e6:.1f} MB: growth {growth:.1%}")
    print("targets met" if ok else "TARGETS MISSED")
    if args.report:
        report: dict[str, Any] = {
            "cameras": rows,
            "rss": rss,
            "rss_growth": growth,
            "seconds": seconds,
            "ok": ok,
        }
        Path(args.report).write_text(json.dumps(report, indent=2))
    return 0 if ok else 1
