"""Run the real Sightline processes (the same entry points compose runs) against a test broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bus.broker import free_port
from bus.contracts import CameraSpec, ControlMessage, QuerySpec
from bus.kafka import Producer
from bus.topics import Topics
from configs import load_settings

PROCESS_VERBS = ("ingest", "analyze", "sink", "serve")


class Stack:
    """Processes of one test: shared env (bootstrap, topic prefix, data dir, engine), one log file each."""

    def __init__(self, bootstrap: str, prefix: str, data_dir: Path, **env: str) -> None:
        self.bootstrap, self.prefix, self.data_dir = bootstrap, prefix, data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "SIGHTLINE_BUS__BOOTSTRAP": bootstrap,
            "SIGHTLINE_BUS__TOPIC_PREFIX": prefix,
            "SIGHTLINE_DATA_DIR": str(data_dir),
            "SIGHTLINE_API__PORT": str(self.port),
            "SIGHTLINE_ANALYZER__GROUP_ID": f"{prefix}-analyzer",
            "SIGHTLINE_STORE__GROUP_ID": f"{prefix}-sink",
            **env,
        }
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.topics = Topics.from_config(load_settings(None, bus={"topic_prefix": prefix}).bus)
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, verb: str, **extra_env: str) -> subprocess.Popen[bytes]:
        n = len(self.procs.get(verb, []))
        log = open(self.data_dir / "logs" / f"{verb}-{n}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", "sightline.cli", verb],
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.setdefault(verb, []).append(proc)
        return proc

    def start_all(self, verbs: tuple[str, ...] = PROCESS_VERBS) -> Stack:
        for v in verbs:
            self.start(v)
        if "serve" in verbs:
            wait_for(lambda: _ok(f"{self.api}/healthz"), 30, "API /healthz", self)
        return self

    def register(self, camera: CameraSpec, *queries: QuerySpec) -> None:
        producer = Producer(self.bootstrap)
        try:
            for q in queries:
                msg = ControlMessage(op="upsert", kind="query", id=q.id, query=q)
                producer.send(self.topics.control, msg.key, msg)
            msg = ControlMessage(op="upsert", kind="camera", id=camera.id, camera=camera)
            producer.send(self.topics.control, msg.key, msg)
            producer.flush()
        finally:
            producer.close()

    def events(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            q = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
            body = httpx.get(f"{self.api}/api/events", params=q, timeout=10).json()
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor or not body["items"]:
                return items

    def kill(self, verb: str, index: int = -1, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[verb][index]
        proc.send_signal(sig)
        proc.wait(15)

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for procs in self.procs.values():
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        for verb, procs in self.procs.items():
            for i, p in enumerate(procs):
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
                codes[f"{verb}-{i}"] = p.returncode
        return codes

    def logs(self) -> str:
        out = []
        for f in sorted((self.data_dir / "logs").glob("*.log")):
            out.append(f"==== {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-25:]))
        return "\n".join(out)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str, stack: Stack | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(
        f"timed out after {timeout_s:.0f}s waiting for {what}\n{stack.logs() if stack else ''}"
    )
