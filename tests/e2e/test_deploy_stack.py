"""The compose services, run as written: same commands, configs/production.yaml, the container env.

Only what Docker itself would resolve is replaced: service DNS names (kafka, postgres, vllm) by the
test's Tansu broker, PostgreSQL and scripted GLM server; the volumes (/var/lib/sightline, /media) by
temporary directories; the published port by a free one. Plus a topic prefix and group ids so the
test shares the broker safely. Everything else (engine type, flavor, model, gating, partitions,
secrets from the env-file templates, the healthchecks) is exactly what production runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import need, port_open  # type: ignore[import-not-found]
from deploy_support import ROOT, load_compose, parse_env_text, service_env
from sqlalchemy import create_engine, text

from bus.broker import free_port
from configs import load_settings
from sightline.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.e2e
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PROFILE_SERVICES = ("ingest", "analyzer", "sinks", "dashboard")  # the gpu profile, vllm replaced
# Fields whose production value is a Docker name, a volume path or a published port, and test isolation.
REPLACEABLE = {
    "SIGHTLINE_BUS__BOOTSTRAP",
    "SIGHTLINE_STORE__URL",
    "SIGHTLINE_ENGINE__BASE_URL",
    "SIGHTLINE_DATA_DIR",
    "SIGHTLINE_INGEST__MEDIA_DIRS",
    "SIGHTLINE_API__HOST",
    "SIGHTLINE_API__PORT",
    "SIGHTLINE_BUS__TOPIC_PREFIX",
    "SIGHTLINE_ANALYZER__GROUP_ID",
    "SIGHTLINE_STORE__GROUP_ID",
}


@pytest.fixture
def pg_url() -> Iterator[str]:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not listening on 127.0.0.1:5432")
    schema = f"deploy_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _host_command(argv: list[str]) -> list[str]:
    """A container command line, run from the checkout (which mirrors the image's /app)."""
    return [sys.executable if a == "python" else a.replace("/app/", f"{ROOT}/") for a in argv]


class ComposeLikeRun:
    def __init__(self, compose: dict[str, Any], overrides: dict[str, str], logs: Path) -> None:
        self.compose, self.overrides, self.logs_dir = compose, overrides, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        logs.mkdir(parents=True)

    def env(self, service: str) -> dict[str, str]:
        host = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
        return {**host, **service_env(self.compose["services"][service]), **self.overrides}

    def run_job(self, service: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        svc = self.compose["services"][service]
        argv = _host_command([*svc["entrypoint"], *svc["command"]])
        return subprocess.run(
            argv, cwd=ROOT, env=self.env(service), capture_output=True, text=True, timeout=timeout_s
        )

    def start(self, service: str) -> None:
        svc = self.compose["services"][service]
        with open(self.logs_dir / f"{service}.log", "wb") as log:
            self.procs[service] = subprocess.Popen(
                [sys.executable, "-m", "sightline.cli", *svc["command"]],  # the image's ENTRYPOINT + CMD
                cwd=ROOT,
                env=self.env(service),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def healthy(self, service: str) -> bool:
        test = self.compose["services"][service]["healthcheck"]["test"]
        assert test[0] == "CMD"
        done = subprocess.run(
            _host_command(test[1:]), cwd=ROOT, env=self.env(service), capture_output=True, timeout=30
        )
        return done.returncode == 0

    def stop(self) -> dict[str, int | None]:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {}
        for name, p in self.procs.items():
            try:
                p.wait(30)  # the compose stop_grace_period
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            codes[name] = p.returncode
        return codes

    def logs(self) -> str:
        def tail(f: Path) -> str:
            lines = [ln for ln in f.read_text(errors="replace").splitlines() if '"alembic.' not in ln]
            return "\n".join(lines[-30:])

        return "\n".join(f"==== {f.name}\n{tail(f)}" for f in sorted(self.logs_dir.glob("*.log")))


def _wait(cond: Any, timeout_s: float, what: str, run: ComposeLikeRun) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{run.logs()}")


def _api_keys() -> dict[str, str]:
    env = parse_env_text((ROOT / "deploy/sightline.env.example").read_text())
    return {k["role"]: k["key"] for k in json.loads(env["SIGHTLINE_API__API_KEYS"])}


def test_the_compose_services_turn_a_recording_into_events_with_the_production_config(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, pg_url: str, red_figure_clip: tuple[Path, Any]
) -> None:
    clip, _figure = red_figure_clip
    compose = load_compose()
    production = load_settings(ROOT / "configs/production.yaml")
    port = free_port()
    with ScriptedServer({"mode": "colour"}) as glm:
        overrides = {
            "SIGHTLINE_BUS__BOOTSTRAP": kafka_bootstrap,
            "SIGHTLINE_STORE__URL": pg_url,
            "SIGHTLINE_ENGINE__BASE_URL": glm.base_url,
            "SIGHTLINE_DATA_DIR": str(tmp_path / "data"),
            "SIGHTLINE_INGEST__MEDIA_DIRS": json.dumps([str(clip.parent)]),
            "SIGHTLINE_API__HOST": "127.0.0.1",
            "SIGHTLINE_API__PORT": str(port),
            "SIGHTLINE_BUS__TOPIC_PREFIX": topic_prefix,
            "SIGHTLINE_ANALYZER__GROUP_ID": f"{topic_prefix}-analyzer",
            "SIGHTLINE_STORE__GROUP_ID": f"{topic_prefix}-sink",
        }
        assert set(overrides) <= REPLACEABLE
        run = ComposeLikeRun(compose, overrides, tmp_path / "logs")
        job = run.run_job("topics")
        assert job.returncode == 0, job.stdout + job.stderr
        for service in PROFILE_SERVICES:
            run.start(service)
        try:
            for service in PROFILE_SERVICES:  # the compose healthchecks, as Docker would run them
                _wait(lambda s=service: run.healthy(s), 60, f"{service} healthy", run)
            api = f"http://127.0.0.1:{port}"
            keys = _api_keys()
            admin = {"Authorization": f"Bearer {keys['admin']}"}
            query = {"id": "red", "text": "people in red"}
            # Paced like a live camera: an instant file read can outrun the analyzer's control
            # follower, whose frames then meet no query yet (counted as frames_without_query).
            camera = {"id": "door", "url": str(clip), "realtime": True}
            for path, body in (("/api/queries", query), ("/api/cameras", camera)):
                resp = httpx.post(f"{api}{path}", json=body, headers=admin, timeout=10)
                assert resp.status_code == 201, resp.text

            def events() -> list[dict[str, Any]]:
                viewer = {"Authorization": f"Bearer {keys['viewer']}"}
                body = httpx.get(f"{api}/api/events", params={"limit": 500}, headers=viewer, timeout=10)
                items: list[dict[str, Any]] = body.json()["items"]
                return items

            _wait(
                lambda: {"start", "end"} <= {e["phase"] for e in events()}, 120, "start and end events", run
            )
            got = events()
        finally:
            codes = run.stop()
    assert all(code in (0, -signal.SIGTERM) for code in codes.values()), (codes, run.logs())
    assert all(e["camera_id"] == "door" and e["query_id"] == "red" for e in got)
    assert {e["engine"] for e in got} == {"openai"}, got[0]  # GLM over HTTP, never the CPU baseline
    # Requests name the model as production.yaml does, i.e. vLLM's --served-model-name in compose.
    assert glm.requests and all(r["model"] == production.engine.model for r in glm.requests)
