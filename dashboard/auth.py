"""API keys with roles: `viewer` reads, `admin` writes. Constant-time checks, clear 401/403 bodies."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import time
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request

from configs.settings import ApiConfig, ApiKey
from dashboard.state import AppState, get_state

Role = Literal["viewer", "admin"]
RANK: dict[str, int] = {"viewer": 0, "admin": 1}
# Browsers cannot set headers on EventSource, <img>, <video src> or download links: only these GETs
# may carry a credential in the query string — preferably `?token=` (a short-lived signed token
# from /api/media-token), else `?api_key=`. Every other route wants a header (a key in a URL ends
# up in histories and logs).
BROWSER_PATHS = re.compile(
    r"^/api/(events/stream|alerts/stream|alerts/[^/]+/snapshot|snapshots/[^/]+|cameras/[^/]+/(snapshot|clip)"
    r"|events/[^/]+/(clip|evidence))$"
)
MEDIA_TOKEN_TTL_S = 300


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
    if request.method == "GET" and BROWSER_PATHS.match(request.url.path):
        return request.query_params.get("api_key")
    return None


def _token_secret(keys: tuple[ApiKey, ...]) -> bytes:
    """Derived from the configured keys: every API replica with the same keys signs alike, and
    changing the keys voids every token handed out."""
    return hashlib.sha256(
        b"sightline-media-token\0" + b"\0".join(sorted(k.key.encode() for k in keys))
    ).digest()


def media_token(keys: tuple[ApiKey, ...], key: ApiKey, now: float | None = None) -> str:
    """`<expiry>.<caller id>.<mac>`: names the key by its digest, never the key itself."""
    exp = int((time.time() if now is None else now) + MEDIA_TOKEN_TTL_S)
    body = f"{exp}.{caller_id(key)}"
    return f"{body}.{hmac.new(_token_secret(keys), body.encode(), hashlib.sha256).hexdigest()[:32]}"


def token_key(keys: tuple[ApiKey, ...], token: str, now: float | None = None) -> ApiKey | None:
    """The key a valid, unexpired token stands for; None for anything else."""
    exp, _, rest = token.partition(".")
    caller, _, mac = rest.rpartition(".")
    if not exp.isascii() or not exp.isdigit() or len(exp) > 12:
        return None
    expected = hmac.new(_token_secret(keys), f"{exp}.{caller}".encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return None
    left = int(exp) - (time.time() if now is None else now)
    if not 0 < left <= MEDIA_TOKEN_TTL_S + 5:
        return None
    return next((k for k in keys if caller_id(k) == caller), None)


def _presented(request: Request, keys: tuple[ApiKey, ...]) -> ApiKey | str | None:
    """The matched key; "" when nothing was presented; None when what was presented is wrong."""
    if request.method == "GET" and BROWSER_PATHS.match(request.url.path):
        token = request.query_params.get("token")
        if token is not None:
            return token_key(keys, token)
    key = presented_key(request)
    if not key:
        return ""
    return match_key(keys, key)


def _require(role: Role) -> Any:
    def dependency(request: Request, state: Annotated[AppState, Depends(get_state)]) -> str:
        keys = state.settings.api.api_keys
        if not keys:
            request.state.caller = "anonymous"  # loopback-only deployment (check_exposure enforces it)
            return "anonymous"
        match = _presented(request, keys)
        if match == "":
            raise HTTPException(
                401,
                "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not isinstance(match, ApiKey):
            raise HTTPException(401, "unknown API key or token", headers={"WWW-Authenticate": "Bearer"})
        request.state.api_key = match
        if RANK[match.role] < RANK[role]:
            raise HTTPException(403, f"this key has role `{match.role}`; this operation needs `{role}`")
        request.state.caller = caller_id(match)
        return match.name or match.role

    return Depends(dependency)


viewer = _require("viewer")
admin = _require("admin")
