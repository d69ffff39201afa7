"""What the MCP tools do, as calls on Sightline's own REST API with the caller's key.

The MCP server holds no store or broker connection of its own: every tool is one or two API
requests made with the key the agent presented (or, over stdio, the key it was started with).
So the API's roles are the MCP roles — a `viewer` key that calls a tool that writes gets the
API's 403, said back to the agent as a tool error — and there is one place where access is
decided. Answers are trimmed to what an agent needs (no thinking text, no snapshot bytes).

Plug-in point: a tool is a `ToolSpec` in `TOOLS` with the API route it needs; `mcp_server`
registers only the tools whose routes the API's OpenAPI document lists, so a tool for a route
that is not deployed is simply not offered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

MAX_EVENTS = 200
MAX_SUMMARIES = 50


class ApiRefused(Exception):
    """The API said no (or could not answer); the message is the API's own reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Api:
    """One caller's view of the REST API."""

    base_url: str
    key: str | None
    timeout_s: float = 60.0

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s) as client:
            r = await client.request(method, path, headers=headers, **kwargs)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise ApiRefused(r.status_code, detail if isinstance(detail, str) else str(detail)[:1000])
        return r.json() if r.content else None


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


async def list_cameras(api: Api) -> list[dict[str, Any]]:
    cameras = await api.call("GET", "/api/cameras")
    out = []
    for c in cameras:
        status = c.get("status") or {}
        out.append(
            {
                "id": c["id"],
                "name": c.get("name", ""),
                "url": c.get("url"),  # redacted by the API
                "enabled": c.get("enabled", True),
                "state": status.get("state", "unknown"),
                "reason": status.get("reason", ""),
                "fps_in": status.get("fps_in"),
                "fps_out": status.get("fps_out"),
                "last_status_at": status.get("ts"),
            }
        )
    return out


async def pipeline_status(api: Api) -> list[dict[str, Any]]:
    rows = await api.call("GET", "/api/status")
    keep = ("component", "id", "state", "reason", "fps_in", "fps_out", "lag_s", "drops", "ts")
    return [{k: r.get(k) for k in keep} for r in rows]


async def recent_events(
    api: Api,
    camera_id: str | None = None,
    query_id: str | None = None,
    phase: str | None = None,
    minutes: float | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    since = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat() if minutes else None
    params = _drop_none({"camera_id": camera_id, "query_id": query_id, "phase": phase, "since": since}) | {
        "limit": max(1, min(limit, MAX_EVENTS))
    }
    page = await api.call("GET", "/api/events", params=params)
    keep = ("event_id", "phase", "camera_id", "query_id", "query_text", "track_id", "label", "bbox")
    return [
        {k: e.get(k) for k in keep} | {"at": e.get("wall_ts"), "score": e.get("score")} for e in page["items"]
    ]


async def recent_summaries(
    api: Api, camera_id: str | None = None, query_id: str | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    params = _drop_none({"camera_id": camera_id, "query_id": query_id}) | {
        "limit": max(1, min(limit, MAX_SUMMARIES))
    }
    rows = await api.call("GET", "/api/summaries", params=params)
    keep = ("summary_id", "camera_id", "query_id", "text", "segments", "window_start_wall", "window_end_wall")
    return [{k: s.get(k) for k in keep} for s in rows]


async def ask_camera(api: Api, camera_id: str, question: str, seconds: float | None = None) -> dict[str, Any]:
    body = _drop_none({"camera_id": camera_id, "question": question, "seconds": seconds})
    answer = await api.call("POST", "/api/ask", json=body)
    keep = ("camera_id", "answer", "boxes", "frame_ids", "engine", "model", "latency_ms")
    return {k: answer.get(k) for k in keep}


async def search_history(
    api: Api,
    q: str,
    camera_id: str | None = None,
    kind: str | None = None,
    hours: float | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    since = (datetime.now(UTC) - timedelta(hours=hours)).isoformat() if hours else None
    params = _drop_none({"q": q, "camera_id": camera_id, "kind": kind, "since": since}) | {
        "limit": max(1, min(limit, MAX_EVENTS))
    }
    found = await api.call("GET", "/api/search", params=params)
    keep = ("kind", "id", "camera_id", "query_id", "label", "start", "end", "description", "snapshot_url")
    return {"meaning": found.get("meaning"), "hits": [{k: h.get(k) for k in keep} for h in found["hits"]]}


async def list_alerts(
    api: Api,
    camera_id: str | None = None,
    rule_id: str | None = None,
    severity: str | None = None,
    hours: float | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    since = (datetime.now(UTC) - timedelta(hours=hours)).isoformat() if hours else None
    params = _drop_none({"camera_id": camera_id, "rule_id": rule_id, "severity": severity, "since": since})
    page = await api.call("GET", "/api/alerts", params=params | {"limit": max(1, min(limit, MAX_EVENTS))})
    keep = ("alert_id", "rule_id", "camera_id", "condition", "severity", "label", "zone_id", "line_id")
    return [{k: a.get(k) for k in keep} | {"at": a.get("wall_ts")} for a in page["items"]]


async def clip_link(api: Api, event_id: str, span: str = "event", annotate: bool = False) -> dict[str, Any]:
    """Where the event's clip is (the tool does not fetch the video: an MP4 is no use to a model)."""
    track = await api.call("GET", f"/api/events/{event_id}/track")  # 404 here if no such event
    query = f"span={'track' if span == 'track' else 'event'}" + ("&annotate=true" if annotate else "")
    return {
        "url": f"{api.base_url}/api/events/{event_id}/clip?{query}",
        "camera_id": track.get("camera_id"),
        "label": track.get("label"),
        "timeline": track.get("timeline"),
        "start": track.get("start"),
        "end": track.get("end"),
        "fetch": "GET with your API key (Authorization: Bearer or X-API-Key); the answer is video/mp4",
    }


async def ask_history(
    api: Api, question: str, hours: float | None = None, max_hits: int = 10
) -> dict[str, Any]:
    """An answer from stored events (search hits, their text and best snapshots), citing them."""
    since = (datetime.now(UTC) - timedelta(hours=hours)).isoformat() if hours else None
    body = _drop_none({"scope": "history", "question": question, "since": since}) | {
        "max_hits": max(1, min(max_hits, 50))
    }
    answer = await api.call("POST", "/api/ask", json=body)
    keep = ("kind", "id", "camera_id", "query_id", "label", "start", "end", "description", "snapshot_url")
    return {
        "answer": answer.get("answer"),
        "citations": answer.get("citations", []),
        "hits": [{k: h.get(k) for k in keep} for h in answer.get("hits", [])],
        "model_called": answer.get("model_called"),
        "engine": answer.get("engine"),
    }


async def list_queries(api: Api) -> list[dict[str, Any]]:
    return list(await api.call("GET", "/api/queries"))


async def add_query(
    api: Api,
    id: str,
    text: str,
    cameras: list[str] | None = None,
    kind: str = "grounding",
    interval_s: float | None = None,
) -> dict[str, Any]:
    body = _drop_none({"id": id, "text": text, "kind": kind, "interval_s": interval_s}) | {
        "cameras": cameras or ["*"]
    }
    return dict(await api.call("POST", "/api/queries", json=body))


async def remove_query(api: Api, id: str) -> dict[str, Any]:
    await api.call("DELETE", f"/api/queries/{id}")
    return {"removed": id}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: Callable[..., Awaitable[Any]]
    route: str  # the API path it needs (as OpenAPI lists it); absent route = tool not offered
    writes: bool
    description: str


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("list_cameras", list_cameras, "/api/cameras", False, "Cameras with their live state and fps."),
    ToolSpec("pipeline_status", pipeline_status, "/api/status", False, "Every component's last state."),
    ToolSpec(
        "recent_events",
        recent_events,
        "/api/events",
        False,
        "Object events (track start/update/end), newest first; filter by camera, query, phase, minutes.",
    ),
    ToolSpec(
        "recent_summaries", recent_summaries, "/api/summaries", False, "Temporal summaries, newest first."
    ),
    ToolSpec(
        "ask_camera",
        ask_camera,
        "/api/ask",
        False,
        "Ask the vision model about a camera's latest frame now (or its last `seconds`).",
    ),
    ToolSpec(
        "search_history",
        search_history,
        "/api/search",
        False,
        "Search past tracks and summaries by words or meaning ('a man with a red bag'); best first.",
    ),
    ToolSpec(
        "list_alerts",
        list_alerts,
        "/api/alerts",
        False,
        "Alerts raised by the zone/line rules, newest first; filter by camera, rule, severity, hours.",
    ),
    ToolSpec(
        "clip_link",
        clip_link,
        "/api/events/{event_id}/clip",
        False,
        "The URL of the video clip around an event (`span='track'`: its whole track).",
    ),
    ToolSpec(
        "ask_history",
        ask_history,
        "/api/search",  # history answers are built on the search index
        False,
        "Ask about what happened (stored events and summaries); the answer cites the events it used.",
    ),
    ToolSpec("list_queries", list_queries, "/api/queries", False, "The standing queries and their cameras."),
    ToolSpec(
        "add_query",
        add_query,
        "/api/queries",
        True,
        "Add a standing query (admin key): grounding ('red people') or summary; cameras default to all.",
    ),
    ToolSpec("remove_query", remove_query, "/api/queries/{query_id}", True, "Remove a query (admin key)."),
)
