"""Webhooks: JSON POSTs signed with HMAC-SHA256, retried with exponential backoff and jitter.

Signature header (Stripe-style, so receivers can reject replays):
    X-Sightline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable

import httpx

from bus.redact import redact_url
from sinks.outbound import Item

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Sightline-Signature"
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


def sign(secret: str, body: bytes, ts: int) -> str:
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(
    secret: str, body: bytes, header: str, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        ts = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class WebhookTarget:
    def __init__(
        self,
        url: str,
        secret: str | None,
        timeout_s: float = 5.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.name = "webhook"
        self.secret = secret
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.display = redact_url(url)
        self.client = httpx.Client(timeout=timeout_s, headers={"User-Agent": "sightline-webhook/1"})

    def request(self, item: Item) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(
            {"type": item.kind, "id": item.id, "data": item.payload}, separators=(",", ":")
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Sightline-Event": item.kind,
            "X-Sightline-Id": item.id,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body, int(time.time()))
        return body, headers

    def deliver(self, item: Item) -> bool:
        body, headers = self.request(item)
        for attempt in range(self.retries + 1):
            reason = ""
            try:
                resp = self.client.post(self.url, content=body, headers=headers)
                if resp.status_code < 300:
                    return True
                if resp.status_code not in RETRYABLE:
                    log.warning("webhook %s refused %s: HTTP %d", self.display, item.id, resp.status_code)
                    return False
                reason = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            if attempt < self.retries:
                delay = min(30.0, self.backoff_s * 2**attempt) * random.uniform(0.8, 1.2)
                log.info("webhook %s: %s; retry %d in %.2fs", self.display, reason, attempt + 1, delay)
                self.sleep(delay)
        log.warning("webhook %s gave up on %s after %d attempts", self.display, item.id, self.retries + 1)
        return False

    def close(self) -> None:
        self.client.close()
