"""What a hostile web page can try against an API a browser can reach (issue 18): DNS rebinding
(a foreign Host), cross-site writes (a foreign Origin), framing and sniffing (security headers),
and API docs that load code from a CDN."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from configs import Settings
from dashboard.app import create_app
from dashboard.guards import allowed_hosts


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    # No keys: the loopback default, where a rebinding page would otherwise act as admin.
    with TestClient(create_app(make_settings()), raise_server_exceptions=False) as c:
        yield c


HOSTS = [
    ("rebound-name", "evil.example", 400),
    ("rebound-name-with-port", "evil.example:8000", 400),
    ("lookalike", "127.0.0.1.evil.example", 400),
    ("loopback-ip", "127.0.0.1:8000", 200),
    ("localhost", "localhost:8000", 200),
    ("ipv6-loopback", "[::1]:8000", 200),
    ("upper-case", "LOCALHOST", 200),
]


@pytest.mark.parametrize(("case", "host", "status"), HOSTS, ids=[h[0] for h in HOSTS])
def test_a_foreign_host_is_refused(api: TestClient, case: str, host: str, status: int) -> None:
    assert api.get("/api/cameras", headers={"Host": host}).status_code == status
    assert api.get("/healthz", headers={"Host": host}).status_code == 200  # probes use any name


ORIGINS = [
    ("other-site", "http://evil.example", 403),
    ("rebound-other-port", "http://127.0.0.1:9999", 403),
    ("null-origin", "null", 403),
    ("same-origin", "http://127.0.0.1", 422),  # past the guard: the empty body is refused
]


@pytest.mark.parametrize(("case", "origin", "status"), ORIGINS, ids=[o[0] for o in ORIGINS])
def test_a_state_changing_request_from_another_origin_is_refused(
    api: TestClient, case: str, origin: str, status: int
) -> None:
    r = api.post("/api/cameras", json={}, headers={"Origin": origin})
    assert r.status_code == status, r.text
    assert api.get("/api/cameras", headers={"Origin": origin}).status_code == 200  # reads are not writes


def test_configured_names_and_the_every_address_binding(make_settings: Callable[..., Settings]) -> None:
    keys = [{"key": "admin-key-0123456789ab", "role": "admin"}]
    assert allowed_hosts(make_settings(api={"host": "0.0.0.0", "api_keys": keys}).api) is None
    named = allowed_hosts(
        make_settings(api={"host": "0.0.0.0", "api_keys": keys, "allowed_hosts": ["Cams.Example"]}).api
    )
    assert named is not None and "cams.example" in named and "evil.example" not in named
    app = create_app(make_settings(api={"allowed_hosts": ["cams.example"]}))
    with TestClient(app) as c:
        assert c.get("/api/cameras", headers={"Host": "cams.example:443"}).status_code == 200
        assert c.get("/api/cameras", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("path", ["/", "/api/cameras", "/api/nope", "/docs", "/static/app.js"])
def test_security_headers_on_every_answer(api: TestClient, path: str) -> None:
    r = api.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    if path != "/docs":
        assert "'unsafe-inline'" not in r.headers["content-security-policy"]


def test_api_docs_load_nothing_from_a_cdn(api: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = api.get(page).text
        assert "cdn." not in html and "fonts.googleapis" not in html and "unpkg" not in html, page
        for src in (
            ("swagger-ui-bundle.js", "swagger-ui.css") if page == "/docs" else ("redoc.standalone.js",)
        ):
            url = next(part.split('"')[0] for part in html.split('"/static-offline-docs/')[1:] if src in part)
            assert api.get(f"/static-offline-docs/{url}").status_code == 200, src
