"""Browser-facing guards (ASGI middleware): the Host and Origin checks against DNS rebinding, and
security headers on every answer.

DNS rebinding: a page on evil.example re-points its name to 127.0.0.1 and then calls the API as
same-origin — with no keys (the loopback default) it would act as admin. The browser still sends
`Host: evil.example`, so a request is refused unless its Host is the bound address, a loopback
name, or one of `api.allowed_hosts`; and a state-changing request whose `Origin` is another site
is refused too (a plain cross-site form POST needs no rebinding at all)."""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from configs.settings import ApiConfig
from dashboard.limits import EXEMPT_PATHS, ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The page loads only its own script, style and images; nothing may frame it.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc (served locally by fastapi-offline) start from one inline script each.
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


def allowed_hosts(api: ApiConfig) -> frozenset[str] | None:
    """Host names this server answers to; None = not checked (bound to every address with no
    `api.allowed_hosts`: the names clients use cannot be known, and keys are required there)."""
    names = {h.strip("[]").lower() for h in api.allowed_hosts}
    host = api.host.strip("[]").lower()
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        unspecified = False
    if unspecified:
        return frozenset(names | LOOPBACK_NAMES) if names else None
    return frozenset(names | LOOPBACK_NAMES | {host})


def _hostname(value: str) -> str:
    """`example.com:8000` / `[::1]:8000` / `127.0.0.1` → the name without port, lower case."""
    try:
        return (urlsplit(f"//{value}").hostname or "").lower()
    except ValueError:
        return ""


class HostOriginGuard:
    def __init__(self, app: ASGIApp, api: ApiConfig) -> None:
        self.app = app
        self.hosts = allowed_hosts(api)
        self.origin_names = frozenset(h.strip("[]").lower() for h in api.allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        host = headers.get("host")
        checked = self.hosts is not None and host is not None and scope.get("path") not in EXEMPT_PATHS
        if checked and _hostname(host or "") not in (self.hosts or ()):
            await _refuse(send, 400, "unknown Host: add the name to api.allowed_hosts to serve it")
            return
        origin = headers.get("origin")
        if origin is not None and scope.get("method", "GET") not in SAFE_METHODS:
            # Same origin: scheme://host:port equal to what the request was sent to (another port on
            # loopback is another site), or a name the operator listed (a proxy may rewrite Host).
            name = _hostname(origin.removeprefix("http://").removeprefix("https://"))
            same = host is not None and urlsplit(origin).netloc.lower() == host.lower()
            same = same or name in self.origin_names
            if origin == "null" or not same:
                await _refuse(send, 403, "cross-origin request refused (Origin is another site)")
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """nosniff, no framing, a strict CSP (relaxed for the API docs' inline start-up script), and no
    Referer: URLs of snapshots and streams may carry a short-lived token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope.get("path") in DOCS_PATHS else CSP

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", csp.encode()),
                    (b"referrer-policy", b"no-referrer"),
                ]
                names = {k.lower() for k, _ in msg.get("headers", [])}
                msg["headers"] = [*msg.get("headers", []), *(h for h in extra if h[0] not in names)]
            await send(msg)

        await self.app(scope, receive, with_headers)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
