"""API keys with roles: `viewer` reads, `admin` writes. Constant-time checks, clear 401/403 bodies."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request

from configs.settings import ApiConfig, ApiKey
from dashboard.state import AppState, get_state

Role = Literal["viewer", "admin"]
RANK: dict[str, int] = {"viewer": 0, "admin": 1}
# Browsers cannot set headers on EventSource or <img>: these GETs may carry ?api_key=.
QUERY_KEY_PATHS = ("/api/events/stream", "/api/alerts/stream", "/api/snapshots/", "/api/cameras/")
QUERY_KEY_SUFFIXES = ("/clip", "/evidence")  # <video src> and download links (issue 19)


class InsecureConfig(RuntimeError):
    """The API would be reachable from other machines without any key."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(api: ApiConfig) -> None:
    if not api.api_keys and not is_loopback(api.host):
        raise InsecureConfig(
            f"refusing to serve on {api.host}:{api.port} without API keys: anyone on the network could "
            "read cameras and change them. Set api.api_keys (viewer/admin) or bind to 127.0.0.1."
        )


def match_key(keys: tuple[ApiKey, ...], presented: str) -> ApiKey | None:
    """Compare against every key without an early exit, so timing says nothing about which matched."""
    found = None
    given = presented.encode()
    for k in keys:
        if hmac.compare_digest(k.key.encode(), given):
            found = k
    return found


def caller_id(key: ApiKey) -> str:
    """Who a checked key is, for per-caller limits: a digest, so the key itself is never a dict key
    that could end up in a log or a dump."""
    return "key:" + hashlib.sha256(key.key.encode()).hexdigest()[:16]


def authenticated_caller(request: Request) -> str:
    """The caller the auth dependency accepted; with no keys configured, the client address (a key
    sent anyway is not checked, so it must not pick the bucket)."""
    caller = getattr(request.state, "caller", "anonymous")
    if caller == "anonymous":
        return "addr:" + (request.client.host if request.client else "unknown")
    return str(caller)


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if key := request.headers.get("x-api-key"):
        return key.strip()
    path = request.url.path
    if request.method == "GET" and (path.startswith(QUERY_KEY_PATHS) or path.endswith(QUERY_KEY_SUFFIXES)):
        return request.query_params.get("api_key")
    return None


def _require(role: Role) -> Any:
    def dependency(request: Request, state: Annotated[AppState, Depends(get_state)]) -> str:
        keys = state.settings.api.api_keys
        if not keys:
            request.state.caller = "anonymous"  # loopback-only deployment (check_exposure enforces it)
            return "anonymous"
        key = presented_key(request)
        if not key:
            raise HTTPException(
                401,
                "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        match = match_key(keys, key)
        if match is None:
            raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
        if RANK[match.role] < RANK[role]:
            raise HTTPException(403, f"this key has role `{match.role}`; this operation needs `{role}`")
        request.state.caller = caller_id(match)
        return match.name or match.role

    return Depends(dependency)


viewer = _require("viewer")
admin = _require("admin")
