"""What every long-lived process shares: stop on signals, structured logs, lifecycle states."""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from configs.settings import Settings

CONTEXT_FIELDS = ("worker", "camera_id", "query_id", "component")


class State(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with camera_id / query_id / worker when the call passed them."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None) or (_WORKER if name == "worker" else None)
            if value:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # a filter (bus.redact) may have formatted and masked it already
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


_WORKER = ""


def setup_logging(level: str = "INFO", worker: str = "") -> None:
    global _WORKER
    _WORKER = worker
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def private_files(*dirs: str | os.PathLike[str]) -> None:
    """Files this process creates are its user's alone (0600, directories 0700): logs, the store,
    snapshots and the effective config describe cameras and may quote secrets. `dirs` that already
    exist (a data dir from an older version) are tightened, with the log files in them."""
    os.umask(0o077)
    for d in dirs:
        path = Path(d)
        if not path.is_dir():
            continue
        logs = path / "logs"
        targets = [(path, 0o700)]
        if logs.is_dir():
            targets += [(logs, 0o700), *((f, 0o600) for f in logs.glob("*.log"))]
        for target, mode in targets:
            try:
                target.chmod(mode)
            except PermissionError:  # a mounted volume owned by someone else (fsGroup): say so, go on
                logging.getLogger(__name__).warning("cannot make %s private (not its owner)", target)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT/SIGTERM, so loops can finish their batch and close cleanly."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


def require_bootstrap(settings: Settings) -> str:
    if not settings.bus.bootstrap:
        raise SystemExit(
            "bus.bootstrap is not set: pass --bootstrap HOST:PORT or SIGHTLINE_BUS__BOOTSTRAP, "
            "or use `sightline up`, which starts an embedded broker"
        )
    return settings.bus.bootstrap


def worker_id(kind: str, configured: str | None = None) -> str:
    return configured or f"{kind}-{os.uname().nodename}-{os.getpid()}"
