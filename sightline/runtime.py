"""`sightline up`: the embedded default as one process tree.

It starts a Tansu broker, then `sightline ingest | analyze | rules | sink | serve` as
child processes — the same entry points the docker-compose services run — with
one effective config file, restarts a child that dies, and on Ctrl-C / SIGTERM
stops the children, then the broker. Children die with us even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from bus.broker import EmbeddedBroker
from bus.contracts import CameraSpec, ControlMessage, QuerySpec
from bus.kafka import Producer, ensure_topics
from bus.topics import Topics
from configs.settings import Settings
from lifecycle.process import setup_logging, stop_on_signals
from sightline.samples import sample_video

log = logging.getLogger("sightline.up")
CHILDREN = ("ingest", "analyze", "rules", "sink", "serve")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    verb: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started: list[float] = field(default_factory=list)

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.started.append(time.monotonic())

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", self.verb)
            self.proc.kill()
            self.proc.wait(5)


def register_sample(settings: Settings, bootstrap: str, topics: Topics) -> CameraSpec:
    demo = settings.demo
    camera = CameraSpec(
        id=demo.camera_id,
        url=str(sample_video(settings.data_dir)),
        name="Sample camera",
        loop=demo.loop,
        realtime=demo.realtime,
    )
    query = QuerySpec(id="people", text=demo.query)
    producer = Producer(bootstrap, client_id="sightline-up")
    try:
        for msg in (
            ControlMessage(op="upsert", kind="camera", id=camera.id, camera=camera),
            ControlMessage(op="upsert", kind="query", id=query.id, query=query),
        ):
            producer.send(topics.control, msg.key, msg)
        producer.flush()
    finally:
        producer.close()
    return camera


def wait_healthy(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def up(settings: Settings, sample: bool = True) -> int:
    setup_logging(settings.log_level, "up")
    stop = stop_on_signals()
    data = Path(settings.data_dir)
    (data / "logs").mkdir(parents=True, exist_ok=True)
    broker = None
    if not settings.bus.bootstrap:
        broker = EmbeddedBroker(
            settings.bus.embedded.port, settings.bus.embedded.binary, log_path=data / "logs" / "broker.log"
        ).start()
        settings = settings.model_copy(
            update={"bus": settings.bus.model_copy(update={"bootstrap": broker.bootstrap})}
        )
    bootstrap = settings.bus.bootstrap or ""
    topics = Topics.from_config(settings.bus)
    children: list[Child] = []
    try:
        ensure_topics(bootstrap, topics.all(), settings.bus.partitions, settings.bus.replication)
        effective = data / "effective-config.yaml"
        effective.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
        if sample and settings.demo.sample_camera:
            cam = register_sample(settings, bootstrap, topics)
            print(f"sample camera '{cam.id}': {cam.url} (query: {settings.demo.query!r})", flush=True)
        for verb in CHILDREN:
            argv = [sys.executable, "-m", "sightline.cli", verb, "--config", str(effective)]
            children.append(Child(verb, argv, data / "logs" / f"{verb}.log"))
            children[-1].start()
        api = f"http://{settings.api.host}:{settings.api.port}"
        healthy = wait_healthy(f"{api}/healthz", 30)
        print(
            f"Sightline is up{'' if healthy else ' (API not answering yet: see data/logs/serve.log)'}\n"
            f"  dashboard:  {api}/\n  events:     {api}/api/events?limit=5\n  API docs:   {api}/docs\n"
            f"  Kafka:      {bootstrap} (topics {settings.bus.topic_prefix}.*)\n"
            f"  logs:       {data / 'logs'}\nCtrl-C stops everything.",
            flush=True,
        )
        supervise(children, stop)
        return 0
    finally:
        for c in children:
            c.stop()
        deadline = time.monotonic() + 15
        for c in children:
            c.wait(deadline)
        if broker:
            broker.stop()
        print("Sightline stopped.", flush=True)


def supervise(children: list[Child], stop: object) -> None:
    """Restart a child that died, with capped backoff; a crash loop is reported, not hidden."""
    import threading

    assert isinstance(stop, threading.Event)
    while not stop.wait(0.5):
        now = time.monotonic()
        for c in children:
            if c.proc is None or c.proc.poll() is None:
                continue
            if c.next_start == 0.0:
                c.restarts += 1
                delay = min(30.0, 0.5 * 2 ** min(c.restarts, 6))
                c.next_start = now + delay
                log.warning(
                    "%s exited with %s; restarting in %.1fs (see %s)",
                    c.verb,
                    c.proc.returncode,
                    delay,
                    c.log_path,
                )
            elif now >= c.next_start:
                c.next_start = 0.0
                c.start()
