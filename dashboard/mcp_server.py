"""`sightline mcp`: the Model Context Protocol for agents, on the official `mcp` SDK.

Two transports. **stdio** (an agent starts `sightline mcp` itself): tools call the API with
`mcp.api_key`. **Streamable HTTP** (`--transport http`): every request must carry one of
`api.api_keys` (`Authorization: Bearer` or `X-API-Key`), checked here first (401 otherwise),
and each tool calls the API with that same key, so the API decides the role exactly as for a
browser: a viewer key can read and ask, and is refused (403, as a tool error) for what writes.
The HTTP transport runs stateless (one MCP exchange per request, nothing kept between), so the
key of each request is the key its tools use.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from configs.settings import Settings
from dashboard.auth import is_loopback, match_key, presented_key
from dashboard.mcp_tools import TOOLS, Api, ApiRefused, ToolSpec

log = logging.getLogger(__name__)


def api_url(settings: Settings) -> str:
    if settings.mcp.api_url:
        return settings.mcp.api_url.rstrip("/")
    host = settings.api.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{host}:{settings.api.port}"


def api_routes(base_url: str, key: str | None) -> set[str]:
    """The paths the API serves (its OpenAPI document), so only tools with a route are offered."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(f"{base_url}/openapi.json", headers=headers, timeout=10)
    r.raise_for_status()
    return set(r.json().get("paths", {}))


def _caller_key(ctx: Context[Any, Any], fallback: str | None) -> str | None:
    """The key this request presented (HTTP), or the one the process was started with (stdio)."""
    request = ctx.request_context.request
    if isinstance(request, Request):
        return presented_key(request)
    return fallback


def _as_tool(spec: ToolSpec, base_url: str, fallback_key: str | None) -> Any:
    """`spec.fn(api, **args)` as an MCP tool `(**args, ctx)`: same parameters, the Api from the caller."""

    @functools.wraps(spec.fn)
    async def tool(*args: Any, ctx: Context[Any, Any], **kwargs: Any) -> Any:
        api = Api(base_url, _caller_key(ctx, fallback_key))
        try:
            return await spec.fn(api, *args, **kwargs)
        except ApiRefused as exc:
            raise ToolError(f"Sightline API refused ({exc.status}): {exc.detail}") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"Sightline API unreachable: {type(exc).__name__}") from None

    sig = inspect.signature(spec.fn)
    params = [p for name, p in sig.parameters.items() if name != "api"]
    ctx = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    tool.__signature__ = sig.replace(parameters=[*params, ctx])  # type: ignore[attr-defined]
    tool.__annotations__ = {
        **{k: v for k, v in spec.fn.__annotations__.items() if k != "api"},
        "ctx": Context,
    }
    del tool.__wrapped__  # the SDK must see the signature above, not the wrapped function's
    return tool


def build_server(base_url: str, routes: set[str], fallback_key: str | None = None) -> MCPServer:
    server: MCPServer = MCPServer(
        name="sightline",
        instructions=(
            "Sightline watches cameras with a vision-language model. list_cameras first; then "
            "recent_events / recent_summaries to read what happened, ask_camera to look now."
        ),
    )
    for spec in TOOLS:
        if spec.route not in routes:
            log.info("mcp: tool %s not offered: the API has no %s", spec.name, spec.route)
            continue
        server.add_tool(
            _as_tool(spec, base_url, fallback_key),
            name=spec.name,
            description=spec.description,
            annotations=ToolAnnotations(
                readOnlyHint=not spec.writes, destructiveHint=spec.name.startswith("remove")
            ),
        )
    return server


class RequireKey:
    """ASGI guard in front of the MCP endpoint: an unknown or missing key never reaches a tool."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.keys = app, settings.api.api_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keys:
            key = presented_key(Request(scope))
            if not key or match_key(self.keys, key) is None:
                body = {"detail": "missing API key" if not key else "unknown API key"}
                await JSONResponse(body, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve_stdio(settings: Settings) -> int:
    base = api_url(settings)
    server = build_server(base, api_routes(base, settings.mcp.api_key), settings.mcp.api_key)
    server.run("stdio")
    return 0


def serve_http(settings: Settings) -> int:
    import uvicorn

    cfg = settings.mcp
    if not settings.api.api_keys and not is_loopback(cfg.host):
        raise SystemExit(
            f"refusing to serve MCP on {cfg.host} without api.api_keys: anyone on the network could "
            "read the cameras. Set api.api_keys or bind mcp.host to 127.0.0.1."
        )
    base = api_url(settings)
    routes = api_routes(base, cfg.api_key or next((k.key for k in settings.api.api_keys), None))
    app = build_server(base, routes).streamable_http_app(
        stateless_http=True, json_response=True, host=cfg.host
    )
    log.info("MCP (streamable HTTP) on http://%s:%d/mcp for the API at %s", cfg.host, cfg.port, base)
    uvicorn.run(RequireKey(app, settings), host=cfg.host, port=cfg.port, log_level="warning")
    return 0
