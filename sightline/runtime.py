"""`sightline up`: the embedded default as one process tree.

It starts a Tansu broker, then `sightline ingest | analyze | rules | sink | serve` as
child processes — the same entry points the docker-compose services run — with
one effective config file, restarts a child that dies, and on Ctrl-C / SIGTERM
stops the children, then the broker. Children die with us even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bus.broker import EmbeddedBroker
from bus.contracts import CameraSpec, ControlMessage, QuerySpec
from bus.kafka import Producer, ensure_topics
from bus.redact import MASK, SECRET_PARAMS, install_log_redaction, redact_url
from bus.topics import Topics
from configs.settings import Settings
from lifecycle.process import private_files, setup_logging, stop_on_signals
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
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started: list[float] = field(default_factory=list)

    def start(self) -> None:
        # 0600 whatever the umask: the log quotes camera names, errors and (masked) URLs.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
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


def split_secrets(settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings with every secret masked (for effective-config.yaml, which people read and copy)
    and the `SIGHTLINE_*` variables that give the children the real values (the environment wins
    over the file). A secret is a field whose name says so (api_keys' `key`, webhook_secret, an
    engine's api_key) or a URL carrying credentials (store.url, mqtt_url, webhook_urls)."""
    data = settings.model_dump(mode="json")
    env: dict[str, str] = {}
    for section, fields in data.items():
        if not isinstance(fields, dict):
            continue
        for name, value in fields.items():
            masked = _masked(name, value)
            if masked != value:
                fields[name] = masked
                var = f"SIGHTLINE_{section.upper()}__{name.upper()}"
                env[var] = value if isinstance(value, str) else json.dumps(value)
    return data, env


def _masked(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {k: _masked(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(name, v) for v in value]
    if SECRET_PARAMS.match(name):
        return MASK
    return redact_url(value) if "://" in value else value


def write_effective_config(settings: Settings, path: Path) -> dict[str, str]:
    """Write the masked config (0600); return the environment that carries the secrets."""
    data, env = split_secrets(settings)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older, world-readable copy keeps its mode through O_TRUNC
    with os.fdopen(fd, "w") as out:
        out.write("# Secrets are masked (***); the processes get them from SIGHTLINE_* variables.\n")
        out.write(yaml.safe_dump(data, sort_keys=False))
    return env


def up(settings: Settings, sample: bool = True) -> int:
    setup_logging(settings.log_level, "up")
    install_log_redaction()
    private_files(settings.data_dir)  # umask 077; an older data dir is tightened
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
        env = {**os.environ, **write_effective_config(settings, effective)}
        if sample and settings.demo.sample_camera:
            cam = register_sample(settings, bootstrap, topics)
            print(f"sample camera '{cam.id}': {cam.url} (query: {settings.demo.query!r})", flush=True)
        for verb in CHILDREN:
            argv = [sys.executable, "-m", "sightline.cli", verb, "--config", str(effective)]
            children.append(Child(verb, argv, data / "logs" / f"{verb}.log", env))
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
