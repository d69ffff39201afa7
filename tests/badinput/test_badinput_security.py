"""Security corpus: keys on every route (SSE and snapshots included), webhook targets, the /api/ask
budget, and camera credentials kept out of metrics labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from pydantic import ValidationError

from bus.broker import free_port
from configs import Settings
from configs.settings import IngestConfig, StoreConfig
from dashboard.app import create_app
from dashboard.limits import TokenBudget
from ingest import metrics as ingest_metrics
from ingest.camera import CameraWorker
from sightline.testing.ingest_kit import MemoryFramePublisher, make_plan

VIEWER = "viewer-key-0123456789"
ADMIN = "admin-key-0123456789ab"
KEYS = [{"key": VIEWER, "role": "viewer"}, {"key": ADMIN, "role": "admin"}]
# Routes anyone may call: liveness/readiness for orchestrators, the page shell and its static files,
# and the API description. Everything else must ask for a key.
OPEN = {"/healthz", "/readyz", "/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@pytest.fixture
def keyed(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(api={"api_keys": KEYS})), raise_server_exceptions=False) as c:
        yield c


def _concrete(path: str) -> str:
    return path.replace("{camera_id}", "c1").replace("{query_id}", "q1").replace("{snapshot_id}", "s1")


def test_every_route_but_the_open_ones_needs_a_key(keyed: TestClient) -> None:
    checked = []
    paths = keyed.app.openapi()["paths"]  # type: ignore[attr-defined]
    for path, ops in paths.items():
        if path in OPEN:
            continue
        for method in ops:
            m = method.upper()
            r = keyed.request(m, _concrete(path), json={} if m in ("POST", "PATCH") else None)
            assert r.status_code == 401, (m, path, r.status_code)
            checked.append(f"{m} {path}")
    assert {"GET /api/events/stream", "GET /api/snapshots/{snapshot_id}", "POST /api/ask"} <= set(checked)
    assert "GET /api/cameras/{camera_id}/snapshot" in checked and "GET /metrics" in checked


@pytest.mark.parametrize(
    ("case", "path"),
    [
        ("sse-stream", "/api/events/stream?max_s=0.01"),
        ("alert-stream", "/api/alerts/stream?max_s=0.01"),
        ("event-snapshot", "/api/snapshots/s1"),
        ("camera-snapshot", "/api/cameras/c1/snapshot"),
        ("event-clip", "/api/events/e1/clip"),
        ("event-evidence", "/api/events/e1/evidence"),
        ("camera-clip", "/api/cameras/c1/clip?start_s=0&end_s=1"),
    ],
)
def test_browser_endpoints_take_a_query_key_and_refuse_a_wrong_one(
    keyed: TestClient, case: str, path: str
) -> None:
    sep = "&" if "?" in path else "?"
    assert keyed.get(path).status_code == 401
    assert keyed.get(f"{path}{sep}api_key=not-a-key-at-all-000").status_code == 401
    ok = keyed.get(f"{path}{sep}api_key={VIEWER}")
    assert ok.status_code in (200, 404), ok.text  # past auth: the stream, or "no such snapshot"


@pytest.mark.parametrize(
    "path", ["/api/cameras", "/api/cameras/c1", "/api/cameras/c1/timeline", "/api/events"]
)
def test_a_query_key_is_refused_where_a_header_can_be_sent(keyed: TestClient, path: str) -> None:
    """`?api_key=` was taken on every GET /api/cameras/*; now only where a browser cannot send a header."""
    assert keyed.get(f"{path}?api_key={VIEWER}").status_code == 401
    assert keyed.get(path, headers={"X-API-Key": VIEWER}).status_code in (200, 404)


def test_short_lived_signed_tokens_for_streams_and_images(keyed: TestClient) -> None:
    from dashboard.auth import MEDIA_TOKEN_TTL_S, media_token

    r = keyed.get("/api/media-token", headers={"X-API-Key": VIEWER})
    assert r.status_code == 200 and r.json()["expires_in_s"] == MEDIA_TOKEN_TTL_S
    token = r.json()["token"]
    assert VIEWER not in token
    assert keyed.get(f"/api/events/stream?max_s=0.01&token={token}").status_code == 200
    assert keyed.get(f"/api/cameras/c1/snapshot?token={token}").status_code == 404  # past auth
    assert keyed.get(f"/api/cameras/c1?token={token}").status_code == 401  # not a browser route
    assert keyed.get(f"/api/media-token?token={token}").status_code == 401  # a token mints no token
    exp, caller, mac = token.split(".")
    forged = [
        f"{int(exp) + 3600}.{caller}.{mac}",  # lifetime stretched
        f"{exp}.{caller}.{'0' * len(mac)}",  # signature guessed
        f"{exp}.key:{'0' * 16}.{mac}",  # another caller
        "garbage",
        "",
    ]
    for bad in forged:
        assert keyed.get(f"/api/events/stream?max_s=0.01&token={bad}").status_code == 401, bad
    keys = keyed.app.state.sightline.settings.api.api_keys  # type: ignore[attr-defined]
    expired = media_token(keys, keys[0], now=0.0)
    assert keyed.get(f"/api/events/stream?max_s=0.01&token={expired}").status_code == 401
    # A viewer's token is a viewer: it cannot write (and tokens work on GETs only anyway).
    assert keyed.post(f"/api/cameras?token={token}", json={}).status_code == 401


# ---- webhook targets -----------------------------------------------------------------------------
WEBHOOK_REFUSED = [
    ("ftp", "ftp://hooks.example/in", "scheme 'ftp' is not allowed"),
    ("file", "file:///etc/passwd", "scheme 'file' is not allowed"),
    ("javascript", "javascript:alert(1)", "scheme 'javascript' is not allowed"),
    ("gopher", "gopher://127.0.0.1:6379/_FLUSHALL", "scheme 'gopher' is not allowed"),
    ("no-host", "https:///in", "no host"),
    ("bad-port", "https://hooks.example:99999/in", "malformed"),
    ("newline", "https://hooks.example/in\r\nX-Injected: 1", "control characters"),
    ("cloud-metadata", "http://169.254.169.254/latest/meta-data/", "link-local"),
    ("link-local-v6", "http://[fe80::1]/in", "link-local"),
    ("unspecified", "http://0.0.0.0:8080/in", "link-local/unspecified"),
    ("multicast", "http://239.1.2.3/in", "multicast"),
    # Other spellings of 169.254.169.254 (issue 18): the same address once the resolver reads them.
    ("integer", "http://2852039166/latest/", "link-local"),
    ("hex", "http://0xa9fea9fe/latest/", "link-local"),
    ("octal", "http://0251.0376.0251.0376/latest/", "link-local"),
    ("two-part", "http://169.254.43518/latest/", "link-local"),
    ("trailing-dot", "http://169.254.169.254./latest/", "link-local"),
    ("ipv4-mapped-v6", "http://[::ffff:169.254.169.254]/latest/", "link-local"),
    ("ipv4-mapped-v6-hex", "http://[::ffff:a9fe:a9fe]/latest/", "link-local"),
]


@pytest.mark.parametrize(("case", "url", "why"), WEBHOOK_REFUSED, ids=[w[0] for w in WEBHOOK_REFUSED])
def test_webhook_targets_are_validated_when_the_config_loads(case: str, url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        StoreConfig(webhook_urls=("https://ok.example/in", url))


def test_webhook_targets_that_are_fine() -> None:
    urls = (
        "https://hooks.example/in?x=1",
        "http://10.0.0.7:8080/in",
        "http://localhost:9000/",
        "http://[::1]/",
    )
    assert StoreConfig(webhook_urls=urls).webhook_urls == urls
    # Link-local only when the operator says so (a receiver on a link-local network).
    StoreConfig(webhook_urls=("http://169.254.10.20/in",), webhook_allow_link_local=True)


# ---- /api/ask: rate limit (tests/unit/test_api_auth.py) and token budget ------------------------------
def test_token_budget_counts_tokens_and_resets_per_period() -> None:
    now = [0.0]
    b = TokenBudget(1000, 3600.0, clock=lambda: now[0])
    assert b.check() == 0.0
    b.spend(600)
    assert b.check() == 0.0  # 400 left
    b.spend(600)  # the call in flight may overshoot
    now[0] = 100.0
    assert b.check() == pytest.approx(3500.0)
    now[0] = 3600.0
    assert b.check() == 0.0 and b.spent == 0
    assert TokenBudget(None, 60.0).check() == 0.0
    zero = TokenBudget(0, 60.0)
    assert zero.check() > 0


def test_ask_is_refused_with_429_once_the_budget_is_spent(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(api={"api_keys": KEYS, "ask_token_budget": 5000, "ask_budget_period_s": 3600})
    with TestClient(create_app(settings)) as c:
        h = {"X-API-Key": VIEWER}
        body = {"camera_id": "c1", "question": "who is at the door?"}
        assert c.post("/api/ask", json=body, headers=h).status_code == 404  # within budget: no such camera
        c.app.state.sightline.ask_budget.spend(5000)  # type: ignore[attr-defined]
        r = c.post("/api/ask", json=body, headers=h)
        assert r.status_code == 429 and "token budget spent: 5000 tokens per 3600s" in r.json()["detail"]
        assert 1 <= int(r.headers["retry-after"]) <= 3600


def test_ask_rate_limit_is_keyed_on_the_checked_caller_not_the_sent_key(
    make_settings: Callable[..., Settings],
) -> None:
    """With no keys configured, a key sent anyway is not checked: a new one per call must not buy
    a fresh bucket (it did: the limiter took the raw header)."""
    with TestClient(create_app(make_settings(api={"ask_per_minute": 3}))) as c:
        body = {"camera_id": "c1", "question": "who is at the door?"}
        codes = [
            c.post("/api/ask", json=body, headers={"X-API-Key": f"made-up-key-{i:08d}"}).status_code
            for i in range(5)
        ]
    assert codes == [404, 404, 404, 429, 429]  # 404: past the limiter, no such camera


def test_metric_labels_come_from_closed_sets(keyed: TestClient) -> None:
    """Any string is a method to the server; it must not become a label value (memory for good)."""
    for i in range(20):
        keyed.request("X" * 15_000 + str(i), "/api/events")
    keyed.request("BREW", "/healthz")
    text = keyed.get("/metrics", headers={"X-API-Key": VIEWER}).text
    assert "XXXX" not in text and "BREW" not in text and 'method="other"' in text
    assert len(text) < 100_000


# ---- credentials never in metrics labels ------------------------------------------------------------
def test_camera_credentials_never_reach_ingest_metrics() -> None:
    password = "Pw-in-url-7731"
    url = f"rtsp://admin:{password}@127.0.0.1:{free_port()}/live?token={password}"
    sink = MemoryFramePublisher()
    w = CameraWorker(
        make_plan(url, "door"), IngestConfig(reconnect_initial_s=0.05, reconnect_max_s=0.1), sink
    )
    w.start()
    assert sink.wait_for(lambda s: s.states().count("reconnecting") >= 2, 10), sink.states()
    w.stop()
    assert w.join(5)
    exposition = generate_latest(ingest_metrics.REGISTRY).decode()
    assert 'camera_id="door"' in exposition
    assert password not in exposition
    assert all(password not in u.reason for u in sink.updates)
