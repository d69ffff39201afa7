"""Fixtures shared by the three tiers: unit, broker (real Tansu) and end-to-end."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bus.broker import EmbeddedBroker
from configs import Settings, load_settings
from sightline.samples import Figure, cut_clip, generate_clip, vtest_path

IN_CI = bool(os.environ.get("CI"))
RED = (30, 30, 220)  # BGR


def need(condition: bool, reason: str) -> None:
    """Skip on a user's machine that lacks a service; in CI a missing service is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Tansu broker for the session; tests isolate themselves by topic prefix."""
    log = tmp_path_factory.mktemp("tansu") / "broker.log"
    broker = EmbeddedBroker(log_path=log)
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings rooted in the test's tmp dir; keyword overrides are nested dicts."""

    def factory(**overrides: Any) -> Settings:
        base: dict[str, Any] = {"data_dir": str(tmp_path / "data")}
        return load_settings(None, **_merge(base, overrides))

    return factory


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def red_figure_clip(media_dir: Path) -> tuple[Path, Figure]:
    """12 s, 10 fps, 640×360: a red figure enters at 3 s and leaves at 9 s, walking left to right."""
    fig = Figure(RED, 3.0, 9.0, (0.15, 0.55), (0.85, 0.55))
    return generate_clip(media_dir / "red_figure.mp4", duration_s=12, fps=10, figures=[fig]), fig


@pytest.fixture(scope="session")
def short_clip(media_dir: Path) -> Path:
    """4 s of a figure crossing, for plumbing tests that only need frames to flow."""
    fig = Figure(RED, 0.5, 3.5, (0.2, 0.5), (0.8, 0.5))
    return generate_clip(media_dir / "short.mp4", duration_s=4, fps=10, figures=[fig])


@pytest.fixture(scope="session")
def vtest() -> Path:
    path = vtest_path()
    need(path is not None, "Debian's opencv-doc (vtest.avi) is not installed")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def vtest_10s(vtest: Path, media_dir: Path) -> Path:
    """The first 10 s of vtest.avi (pedestrians, 768×576, 10 fps) as H.264."""
    return cut_clip(vtest, media_dir / "vtest_10s.mp4", 10)


@pytest.fixture(scope="session")
def vtest_20s(vtest: Path, media_dir: Path) -> Path:
    """The first 20 s of vtest.avi: the span of tests/data/vtest_people_0-20s.json."""
    return cut_clip(vtest, media_dir / "vtest_20s.mp4", 20)


# -- search over history (issue 14) --------------------------------------------------------------
PG_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pgvector_installed() -> bool:
    """pgvector's control file is in the local server's extension directory (scripts/ensure-pgvector.sh)."""
    return any(Path("/usr/share/postgresql").glob("*/extension/vector.control"))


@pytest.fixture(params=["sqlite", "postgresql"])
def search_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL on SQLite, then on PostgreSQL with pgvector (one schema per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/search.db"
        return
    from sqlalchemy import create_engine, text

    need(port_open("127.0.0.1", 5432), "PostgreSQL is not listening on 127.0.0.1:5432")
    need(
        pgvector_installed(),
        "pgvector is not installed in the local PostgreSQL (bash scripts/ensure-pgvector.sh)",
    )
    schema = f"s_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        PG_TEST_URL.replace("postgresql:", "postgresql+psycopg:"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        # The extension is database-wide; it lives in `public` so every test schema sees its type.
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_TEST_URL}?options=-csearch_path%3D{schema},public"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def wordllama_embedder() -> Any:
    from configs.search import WordLlamaEmbedderConfig
    from sinks.embedders import WordLlamaEmbedder

    return WordLlamaEmbedder(WordLlamaEmbedderConfig())


@pytest.fixture(autouse=True)
def _testclient_on_the_bound_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API refuses Host names it does not serve (DNS rebinding, issue 18), and TestClient's
    default `testserver` is one: in-process clients talk as a browser on the bound address does."""
    from starlette.testclient import TestClient

    original = TestClient.__init__

    def init(
        self: TestClient, app: Any, base_url: str = "http://127.0.0.1", *args: Any, **kwargs: Any
    ) -> None:
        original(self, app, base_url, *args, **kwargs)

    monkeypatch.setattr(TestClient, "__init__", init)
