"""`sightline serve`: uvicorn on settings.api.host/port. Also a background server for tests and embedding."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Generator

import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bus.redact import install_log_redaction
from configs import Settings
from dashboard.app import create_app
from dashboard.auth import InsecureConfig

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after a graceful shutdown, so a clean stop exits -15.
    A supervisor should see rc 0 for a stop it asked for: handle the signals, do not re-raise."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _config(settings: Settings, port: int | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port if port is None else port,
        log_config=None,  # keep the process's JSON logging
        access_log=False,  # access lines would carry ?api_key= from EventSource/img URLs
        timeout_graceful_shutdown=3,
        # No limit_concurrency: it counts connections and 503s /healthz too; dashboard.limits
        # caps requests in flight (health exempt) and event streams per key and address instead.
    )


def serve(settings: Settings) -> int:
    install_log_redaction()
    try:
        config = _config(settings)
    except InsecureConfig as exc:
        log.error("%s", exc)
        print(f"sightline serve: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        url = make_url(settings.store_url).render_as_string(hide_password=True)
        log.error("cannot open the event store at %s: %s", url, type(exc).__name__)
        print(f"sightline serve: cannot open the event store at {url}: {exc.orig}", file=sys.stderr)
        return 1
    log.info("dashboard on http://%s:%d/", settings.api.host, settings.api.port)
    _Server(config).run()
    return 0


class BackgroundServer:
    """The app on a real socket in a thread (port 0 = pick a free one); `url` once started."""

    def __init__(self, settings: Settings, port: int = 0) -> None:
        self.server = _Server(_config(settings, port))
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

    def start(self, timeout_s: float = 15.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("API server did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
