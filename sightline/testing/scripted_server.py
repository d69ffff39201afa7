"""A scripted OpenAI-compatible GLM server: the model boundary for tests and demos, nothing more.

    python -m sightline.testing.scripted_server --port 8001 [--scenario scenario.json]

    with ScriptedServer({"mode": "colour"}) as srv:      # in-process, on a free port, in a thread
        engine = load_engine({"type": "openai", "base_url": srv.base_url, ...})
        srv.requests                                     # every request body received, as sent
        srv.set_scenario({"steps": [{"status": 500}]})   # or POST /scenario at run time

It speaks `/v1/chat/completions` (streaming SSE and non-streaming, with `usage`), `/v1/models` and
`/v1/embeddings` (a hashed bag of words: texts sharing words get similar vectors, deterministically),
reads the thinking switch the way vLLM/SGLang (`chat_template_kwargs.enable_thinking`) and Z.AI
(`thinking.type`) send it, and returns reasoning inline as <think>…</think> or in a separate
`reasoning_content` / `reasoning` field, as the scenario says.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from glm45v_engine.accounting import estimate_text_tokens, prompt_tokens
from glm45v_engine.prompts import HISTORY_MARKER, is_describe_prompt
from sightline.testing.scripted_scenario import (
    BoxSpec,
    ColourSpec,
    Media,
    Scenario,
    Step,
    colour_description,
    colour_summary,
    find_blobs,
    history_answer,
    read_media,
    render_boxes,
    wanted_colours,
)


class ScriptState:
    """The live scenario, the step cursor and the request log (shared with the test thread)."""

    def __init__(self, scenario: Scenario) -> None:
        self._lock = threading.Lock()
        self.scenario = scenario
        self.cursor = 0
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []  # kept apart: tests count chat calls
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def set(self, scenario: Scenario) -> None:
        with self._lock:
            self.scenario, self.cursor = scenario, 0

    def next_step(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[Scenario, Step | None]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            sc = self.scenario
            if self.cursor < len(sc.steps):
                self.cursor += 1
                return sc, sc.steps[self.cursor - 1]
            return sc, None

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


def thinking_requested(body: dict[str, Any]) -> bool:
    kwargs = body.get("chat_template_kwargs")
    if isinstance(kwargs, dict) and "enable_thinking" in kwargs:
        return bool(kwargs["enable_thinking"])
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        return thinking.get("type") == "enabled"
    return True  # GLM-4.5V thinks unless told not to


def compose(sc: Scenario, step: Step | None, media: Media, n: int = 0) -> tuple[str, str | None]:
    """(answer, thinking) for one request: the scripted step, or the mode's fallback."""
    if step is not None:
        answer = "\n".join(p for p in (step.text or "", render_boxes(step.boxes, sc.box_format)) if p)
        return answer, step.thinking
    if sc.mode == "colour":
        if '"segments"' in media.text:
            return colour_summary(media, sc.colours), None
        if is_describe_prompt(media.text):
            return colour_description(media, sc.colours), None
        if HISTORY_MARKER in media.text:
            return history_answer(media.text, sc.colours), None
        wanted = wanted_colours(sc.colours, media.text)
        boxes = find_blobs(media.images[0][1], wanted) if media.images else ()
        boxes = tuple(_worded(b, wanted, n) for b in boxes)
        return (render_boxes(boxes, sc.box_format) if boxes else "none"), None
    return compose(sc, sc.default, media)


def _worded(box: BoxSpec, colours: Sequence[ColourSpec], n: int) -> BoxSpec:
    spec = next((c for c in colours if c.label == box.label and c.wordings), None)
    if spec is None:
        return box
    return box.model_copy(update={"label": spec.wordings[n % len(spec.wordings)]})


def build_app(state: ScriptState) -> FastAPI:
    app = FastAPI(title="scripted GLM server (test stand-in)")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": state.scenario.model, "object": "model", "owned_by": "scripted"}],
        }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/scenario")
    async def set_scenario(request: Request) -> dict[str, Any]:
        state.set(Scenario.model_validate(await request.json()))
        return {"ok": True, "model": state.scenario.model}

    @app.get("/requests")
    async def requests() -> dict[str, Any]:
        return {"count": len(state.requests), "max_in_flight": state.max_in_flight}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            texts = body["input"]
            texts = [texts] if isinstance(texts, str) else texts
            assert isinstance(texts, list) and all(isinstance(x, str) for x in texts)
        except (ValueError, KeyError, TypeError, AssertionError):
            return _error(400, "input must be a string or a list of strings")
        state.embedding_requests.append(body)
        sc = state.scenario
        if sc.embeddings_status >= 400:
            return _error(sc.embeddings_status, "scripted embeddings failure")
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_embedding(x, sc.embedding_dim)}
            for i, x in enumerate(texts)
        ]
        n = sum(estimate_text_tokens(x) for x in texts)
        return JSONResponse(
            {
                "object": "list",
                "model": body.get("model", sc.model),
                "data": data,
                "usage": {"prompt_tokens": n, "total_tokens": n},
            }
        )

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return _error(400, "request body is not a JSON object")
        state.enter()
        try:
            return await _answer(state, body, dict(request.headers))
        finally:
            state.leave()

    return app


async def _answer(state: ScriptState, body: dict[str, Any], headers: dict[str, str]) -> Response:
    sc, step = state.next_step(body, headers)
    delay = sc.latency_s + (step.delay_s if step else 0.0)
    if delay:
        await asyncio.sleep(delay)
    if step and step.fault == "hang":
        await asyncio.sleep(sc.hang_s)
    if step and step.status >= 400:
        return _error(step.status, step.error)
    media = read_media(body, decode=sc.mode == "colour" and step is None)
    by_width = max((sc.latency_by_width.get(w, 0.0) for w, _ in media.sizes), default=0.0)
    if by_width:  # one camera's answers slow, another's fast: cameras told apart by frame width
        await asyncio.sleep(by_width)
    if media.videos and not sc.video:
        # What a server without video support says (a 400, so the client can fall back to frames).
        return _error(400, "video_url content is not supported by this model/server")
    if step and step.fault == "malformed":
        return Response(
            '{"id": "x", "choices": [{"index": 0, "message": {"content": "<|begin_of_b',
            200,
            media_type="application/json",
        )
    if step and step.fault == "empty_choices":
        return JSONResponse({"id": "x", "object": "chat.completion", "choices": []})
    answer, think = compose(sc, step, media, len(state.requests))
    if step and step.fault == "garbage":
        answer = "\x00]]}{[[<|begin_of_box|>[[12, 9x, ,]]<|end_of_box|> ��" + answer[:3]
    thinking = (think or sc.thinking_text) if thinking_requested(body) else None
    content, extra = answer, dict[str, str]()
    if thinking is not None:
        if sc.reasoning == "inline":
            content = f"<think>{thinking}</think>{answer}"
        else:
            extra[sc.reasoning] = thinking
    # What a GLM-4.5V server reports: the image processor's visual tokens, the text, the template.
    tokens_in = prompt_tokens(media.sizes, [media.text])
    usage = {
        "prompt_tokens": tokens_in,
        "completion_tokens": estimate_text_tokens(content + (thinking or "")),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    send_usage = step.usage if step else True
    if body.get("stream"):
        include = bool((body.get("stream_options") or {}).get("include_usage")) and send_usage
        gen = _sse(sc.model, content, extra, usage if include else None, step.fault if step else None)
        return StreamingResponse(gen, media_type="text/event-stream")
    message: dict[str, Any] = {"role": "assistant", "content": content, **extra}
    out: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": sc.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    if send_usage:
        out["usage"] = usage
    return JSONResponse(out)


async def _sse(
    model: str, content: str, extra: dict[str, str], usage: dict[str, int] | None, fault: str | None
) -> AsyncIterator[bytes]:
    cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else []
        obj = {"id": cid, "object": "chat.completion.chunk", "model": model, "choices": choices, **more}
        return f"data: {json.dumps(obj)}\n\n".encode()

    yield chunk({"role": "assistant"})
    for field, text in extra.items():
        for i in range(0, len(text), 16):
            yield chunk({field: text[i : i + 16]})
    for i in range(0, len(content), 16):
        if fault == "disconnect" and i >= len(content) // 2:
            raise ConnectionResetError("scripted disconnect mid-stream")
        yield chunk({"content": content[i : i + 16]})
    yield chunk({}, "stop")
    if usage is not None:
        yield chunk({}, None, usage=usage)
    yield b"data: [DONE]\n\n"


def hashed_embedding(text: str, dim: int) -> list[float]:
    """Each lower-cased word adds ±1 in a dimension picked by its hash (stable across runs)."""
    vec = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vec[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    return vec


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "scripted", "code": status}}, status_code=status
    )


class ScriptedServer:
    """Runs the app with uvicorn in a background thread on a free port; a context manager."""

    def __init__(
        self, scenario: str | dict[str, Any] | Scenario | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = ScriptState(Scenario.load(scenario))
        self.host = host
        # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
        # they are TCP, and with Nagle on every response waited ~40 ms for a delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.state), log_level="warning", timeout_graceful_shutdown=1, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="scripted-glm", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.state.requests

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        return self.state.embedding_requests

    @property
    def max_in_flight(self) -> int:
        return self.state.max_in_flight

    def set_scenario(self, scenario: str | dict[str, Any] | Scenario) -> None:
        self.state.set(Scenario.load(scenario))

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> ScriptedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("scripted GLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sightline.testing.scripted_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--scenario", help="scenario JSON file (default: script mode answering 'none')")
    args = p.parse_args(argv)
    state = ScriptState(Scenario.load(args.scenario))
    print(
        f"scripted GLM server (model {state.scenario.model!r}, mode {state.scenario.mode}) "
        f"on http://{args.host}:{args.port}/v1",
        flush=True,
    )
    uvicorn.run(build_app(state), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
