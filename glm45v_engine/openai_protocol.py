"""The OpenAI chat-completions wire format as GLM servers speak it: errors, bodies, SSE streams.

Failures are sorted into `Retryable` (5xx, 429, timeouts, dropped connections, malformed bodies:
worth another attempt) and `Refused` (other 4xx: the request itself is wrong).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class Retryable(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind, self.retry_after = kind, retry_after


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def raise_for_status(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    detail = error_detail(resp)
    if resp.status_code in RETRYABLE_STATUS:
        ra = resp.headers.get("retry-after")
        retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
        raise Retryable(f"http_{resp.status_code}", f"HTTP {resp.status_code}: {detail}", retry_after)
    raise Refused(resp.status_code, f"HTTP {resp.status_code}: {detail}")


def error_detail(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
        if isinstance(err, dict):
            return str(err.get("message", err))
        return str(err or resp.text[:200])
    except (ValueError, AttributeError):
        return resp.text[:200]


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise Retryable("malformed", f"response is not JSON: {raw[:80]!r}") from None
    if not isinstance(data, dict):
        raise Retryable("malformed", "response is not a JSON object")
    return data


def message(data: dict[str, Any]) -> tuple[str, str | None, str]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Retryable("malformed", "response has no choices")
    msg = choices[0].get("message")
    if not isinstance(msg, dict):
        raise Retryable("malformed", "response choice has no message")
    content = msg.get("content")
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    return (
        content if isinstance(content, str) else "",
        reasoning if isinstance(reasoning, str) else None,
        str(data.get("model") or ""),
    )


async def read_sse(resp: httpx.Response) -> tuple[str, str | None, Any, str]:
    content: list[str] = []
    reasoning: list[str] = []
    usage: Any = None
    model = ""
    done = False
    async for line in resp.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise Retryable("malformed", f"bad stream chunk: {payload[:80]!r}") from None
        model = str(chunk.get("model") or model)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            r = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(r, str):
                reasoning.append(r)
    if not done:
        raise Retryable("malformed", "stream ended without [DONE]")
    return "".join(content), "".join(reasoning) or None, usage, model
