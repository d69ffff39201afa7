"""deploy/healthcheck.py reports what the container's process sees, using the same config and env."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import ROOT, load_script

health = load_script("healthcheck")
PRODUCTION = str(ROOT / "configs/production.yaml")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SIGHTLINE_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """A stand-in API on a free port whose /healthz status the test sets."""
    state = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = state["status"] if self.path == "/healthz" else 404
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SIGHTLINE_API__PORT", str(server.server_address[1]))
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_api_probe_follows_the_configured_port_and_status(api: dict[str, int]) -> None:
    # production.yaml binds 0.0.0.0; the probe goes to loopback on the port the env override chose.
    assert health.main(["api", "--config", PRODUCTION]) == 0
    api["status"] = 503
    assert health.main(["api", "--config", PRODUCTION]) == 1


def test_api_probe_fails_when_nothing_listens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGHTLINE_API__PORT", str(_closed_port()))
    assert health.main(["api", "--config", PRODUCTION, "--timeout", "1"]) == 1
    assert "unhealthy" in capsys.readouterr().err


def test_broker_probe_needs_one_reachable_bootstrap_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        up = f"127.0.0.1:{listener.getsockname()[1]}"
        down = f"127.0.0.1:{_closed_port()}"
        monkeypatch.setenv("SIGHTLINE_BUS__BOOTSTRAP", f"{down},{up}")
        assert health.main(["broker", "--config", PRODUCTION, "--timeout", "1"]) == 0
        monkeypatch.setenv("SIGHTLINE_BUS__BOOTSTRAP", down)
        assert health.main(["broker", "--config", PRODUCTION, "--timeout", "1"]) == 1


def test_bad_config_or_missing_broker_is_unhealthy_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("bus: {partitions: 0}\n")
    assert health.main(["broker", "--config", str(bad)]) == 1
    assert "bus.partitions" in capsys.readouterr().err
    embedded = tmp_path / "embedded.yaml"
    embedded.write_text("data_dir: data\n")
    assert health.main(["broker", "--config", str(embedded)]) == 1
    assert "bus.bootstrap is not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("bootstrap", "expected"),
    [
        ("kafka:9092", [("kafka", 9092)]),
        ("a:1, b:2,", [("a", 1), ("b", 2)]),
        ("[::1]:9092", [("::1", 9092)]),
    ],
)
def test_bootstrap_lists_are_parsed(bootstrap: str, expected: list[tuple[str, int]]) -> None:
    assert health.bootstrap_addresses(bootstrap) == expected


def test_a_bootstrap_without_port_is_reported() -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        health.bootstrap_addresses("kafka")
