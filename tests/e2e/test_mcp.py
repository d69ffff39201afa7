"""`sightline mcp` against `sightline up`, driven by the official MCP SDK's own client.

The stack is the embedded default with two API keys (admin, viewer) and the bundled sample
camera; the MCP server runs as its own process over streamable HTTP and over stdio.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from bus.broker import free_port

pytest.importorskip("mcp", reason="the `mcp` extra is not installed")
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from stackkit import wait_for

pytestmark = pytest.mark.e2e
ADMIN, VIEWER = "admin-key-for-mcp-0001", "viewer-key-for-mcp-0001"
KEYS = json.dumps([{"key": ADMIN, "role": "admin"}, {"key": VIEWER, "role": "viewer"}])


class Up:
    def __init__(self, tmp: Path) -> None:
        self.port, self.tmp = free_port(), tmp
        self.env = {
            **os.environ,
            "SIGHTLINE_BUS__EMBEDDED__PORT": "0",
            "SIGHTLINE_API__API_KEYS": KEYS,
            "SIGHTLINE_MCP__API_URL": f"http://127.0.0.1:{self.port}",
        }
        self.log = tmp / "up.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        try:
            r = httpx.get(f"{self.api}/api/events?limit=5", headers={"X-API-Key": VIEWER}, timeout=3)
            return list(r.json()["items"]) if r.status_code == 200 else []
        except httpx.HTTPError:
            return []

    def logs(self) -> str:
        files = [self.log, *sorted((self.tmp / "data" / "logs").glob("*.log"))]
        return "\n".join(f"== {f.name}\n{f.read_text(errors='replace')[-3000:]}" for f in files if f.exists())


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    stack = Up(tmp_path_factory.mktemp("mcp"))
    with open(stack.log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sightline.cli", "up", "--port", str(stack.port), "--data-dir",
             str(stack.tmp / "data")],
            env=stack.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not stack.events():
            assert proc.poll() is None and time.monotonic() < deadline, stack.logs()
            time.sleep(1)
        yield stack
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def http_client(url: str, key: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(url, http_client=http))


def call(client: Client, name: str, args: dict[str, Any]) -> Any:
    async def go() -> Any:
        async with client as c:
            return await c.call_tool(name, args)

    return anyio.run(go)


def text_of(result: Any) -> str:
    return " ".join(getattr(part, "text", "") for part in result.content)


@pytest.fixture(scope="module")
def mcp_http(up: Up) -> Iterator[str]:
    port = free_port()
    with open(up.tmp / "mcp-http.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sightline.cli", "mcp", "--transport", "http", "--port", str(port)],
            env=up.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/mcp"

    def answering() -> bool:
        try:
            return httpx.post(url, timeout=1).status_code == 401
        except httpx.HTTPError:
            return False

    try:
        wait_for(answering, 30, "the MCP HTTP endpoint")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_viewer_lists_cameras_and_reads_events_over_streamable_http(up: Up, mcp_http: str) -> None:
    async def session() -> tuple[Any, ...]:
        async with http_client(mcp_http, VIEWER) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            cameras = await c.call_tool("list_cameras", {})
            events = await c.call_tool("recent_events", {"camera_id": "sample", "limit": 5})
            asked = await c.call_tool("ask_camera", {"camera_id": "sample", "question": "people"})
            found = await c.call_tool("search_history", {"q": "person", "camera_id": "sample"})
            alerts = await c.call_tool("list_alerts", {"hours": 1})
            first = events.structured_content["result"][0]["event_id"]
            clip = await c.call_tool("clip_link", {"event_id": first, "span": "track"})
            history = await c.call_tool("ask_history", {"question": "when were people seen?", "hours": 1})
            return tools, cameras, events, asked, found, alerts, (first, clip), history

    tools, cameras, events, asked, found, alerts, (first, clip), history = anyio.run(session)
    assert {"list_cameras", "recent_events", "recent_summaries", "ask_camera", "search_history"} <= set(tools)
    assert tools["list_cameras"].annotations.read_only_hint is True
    assert tools["add_query"].annotations.read_only_hint is False
    assert not cameras.is_error, text_of(cameras)
    [cam] = cameras.structured_content["result"]
    assert cam["id"] == "sample" and cam["state"] in ("streaming", "starting", "reconnecting")
    assert not events.is_error, text_of(events)
    items = events.structured_content["result"]
    assert 1 <= len(items) <= 5 and all(e["camera_id"] == "sample" for e in items)
    assert {e["event_id"] for e in items} <= {e["event_id"] for e in _api_events(up, 500)}
    assert not asked.is_error, text_of(asked)
    answer = asked.structured_content["result"]
    assert answer["camera_id"] == "sample" and answer["engine"] == "baseline" and answer["frame_ids"]
    assert not found.is_error, text_of(found)
    hits = found.structured_content["result"]["hits"]
    assert hits and {h["camera_id"] for h in hits} == {"sample"}
    assert not alerts.is_error and alerts.structured_content["result"] == []  # no rules in this stack
    assert not clip.is_error, text_of(clip)
    link = clip.structured_content["result"]
    assert link["camera_id"] == "sample" and link["url"].startswith(f"{up.api}/api/events/")
    assert link["url"].endswith(f"/api/events/{first}/clip?span=track") and link["end"] >= link["start"]
    # (Fetching it is the clips API's business; the bundled sample's msmpeg4 AVI does not remux to MP4.)
    # The bundled baseline is no VLM: the API found the events ([E1]...) and its engine refused to
    # answer from them; the tool says so with the API's reason (GLM-4.5V answers, citing them).
    assert history.is_error and "422" in text_of(history) and "[E1]" in text_of(history)
    assert "baseline engine cannot answer questions about history" in text_of(history)


def _api_events(up: Up, limit: int) -> list[dict[str, Any]]:
    r = httpx.get(f"{up.api}/api/events", params={"limit": limit}, headers={"X-API-Key": ADMIN}, timeout=10)
    return list(r.json()["items"])


def test_a_viewer_key_is_refused_for_what_writes_and_an_admin_key_is_not(up: Up, mcp_http: str) -> None:
    refused = call(http_client(mcp_http, VIEWER), "add_query", {"id": "mcp-q", "text": "red people"})
    assert refused.is_error and "403" in text_of(refused) and "admin" in text_of(refused)
    removal = call(http_client(mcp_http, VIEWER), "remove_query", {"id": "people"})
    assert removal.is_error and "403" in text_of(removal)
    queries = httpx.get(f"{up.api}/api/queries", headers={"X-API-Key": VIEWER}, timeout=10).json()
    assert {q["id"] for q in queries} == {"people"}  # nothing was written

    added = call(http_client(mcp_http, ADMIN), "add_query", {"id": "mcp-q", "text": "red people"})
    assert not added.is_error, text_of(added)
    wait_for(lambda: "mcp-q" in _query_ids(up), 20, "the added query in the API")
    removed = call(http_client(mcp_http, ADMIN), "remove_query", {"id": "mcp-q"})
    assert not removed.is_error, text_of(removed)
    wait_for(lambda: "mcp-q" not in _query_ids(up), 20, "the removed query gone from the API")


def _query_ids(up: Up) -> set[str]:
    queries = httpx.get(f"{up.api}/api/queries", headers={"X-API-Key": VIEWER}, timeout=10).json()
    return {q["id"] for q in queries}


def test_the_http_endpoint_refuses_a_missing_or_unknown_key(mcp_http: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert httpx.post(mcp_http, json=body, timeout=5).status_code == 401
    assert httpx.post(mcp_http, json=body, headers={"X-API-Key": "x" * 20}, timeout=5).status_code == 401


def test_stdio_serves_the_same_tools_with_the_key_it_was_started_with(up: Up) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sightline.cli", "mcp"],
        env={**up.env, "SIGHTLINE_MCP__API_KEY": VIEWER},
    )

    async def session() -> tuple[Any, Any]:
        async with Client(params) as c:
            return await c.call_tool("list_cameras", {}), await c.call_tool(
                "add_query", {"id": "mcp-stdio", "text": "red people"}
            )

    cameras, refused = anyio.run(session)
    assert not cameras.is_error and cameras.structured_content["result"][0]["id"] == "sample"
    assert refused.is_error and "403" in text_of(refused)
