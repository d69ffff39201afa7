"""Webhooks: JSON POSTs signed with HMAC-SHA256, retried with exponential backoff and jitter.

Signature header (Stripe-style, so receivers can reject replays):
    X-Sightline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bus.redact import redact_url
from configs.settings import address_refused
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


class AddressRefused(Exception):
    """The receiver's name resolved to an address webhooks must not reach."""


class WebhookTarget:
    """One receiver. `deliver` runs in the target's own outbound thread (sinks.outbound.Worker), so
    a slow receiver delays only its own queue; each attempt has a total deadline (`timeout_s` for
    resolving, connecting, sending and the status line — a reply dripping one byte every few
    seconds cannot hold it longer) and the reply's body is never read (a 150 MB answer costs
    nothing). The name is resolved and every address checked at each attempt, and the
    connection goes to the checked address (pinned; Host and TLS SNI keep the name), so DNS
    cannot swap in a link-local address after the config was checked."""

    def __init__(
        self,
        url: str,
        secret: str | None,
        timeout_s: float = 5.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        *,
        name: str = "webhook",
        allow_link_local: bool = False,
    ) -> None:
        self.url = url
        self.name = name
        self.secret = secret
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.allow_link_local = allow_link_local
        self.display = redact_url(url)
        self._loop = asyncio.new_event_loop()
        self._client: httpx.AsyncClient | None = None

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
                status = self._loop.run_until_complete(self._attempt(body, headers))
                if status < 300:
                    return True
                if status not in RETRYABLE:
                    log.warning("webhook %s refused %s: HTTP %d", self.display, item.id, status)
                    return False
                reason = f"HTTP {status}"
            except AddressRefused as exc:  # not retried: the address is the problem, not the moment
                log.warning("webhook %s not sent: %s", self.display, exc)
                return False
            except TimeoutError:
                reason = f"no answer within {self.timeout_s:g}s"
            except (httpx.HTTPError, OSError) as exc:
                reason = type(exc).__name__
            if attempt < self.retries:
                delay = min(30.0, self.backoff_s * 2**attempt) * random.uniform(0.8, 1.2)
                log.info("webhook %s: %s; retry %d in %.2fs", self.display, reason, attempt + 1, delay)
                self.sleep(delay)
        log.warning("webhook %s gave up on %s after %d attempts", self.display, item.id, self.retries + 1)
        return False

    async def _attempt(self, body: bytes, headers: dict[str, str]) -> int:
        async with asyncio.timeout(self.timeout_s):
            url, host_header, extensions = await self._pinned()
            if self._client is None:
                self._client = httpx.AsyncClient(
                    timeout=self.timeout_s, headers={"User-Agent": "sightline-webhook/1"}
                )
            async with self._client.stream(
                "POST", url, content=body, headers={**headers, "Host": host_header}, extensions=extensions
            ) as resp:
                return resp.status_code  # the body is not read: closing the stream drops it

    async def _pinned(self) -> tuple[str, str, dict[str, Any]]:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        for ip in addresses:  # every address: a name that resolves to several must not mix in a bad one
            if address_refused(ip, allow_link_local=self.allow_link_local):
                shown = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
                raise AddressRefused(
                    f"{host} resolves to {shown} (link-local/unspecified/multicast); "
                    "set store.webhook_allow_link_local to allow it"
                )
        if not addresses:
            raise AddressRefused(f"{host} resolves to no address")
        ip = addresses[0]
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = f"{literal}:{port}"
        url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rpartition("@")[2]  # as the URL names it, without any userinfo
        extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
        return url, host_header, extensions

    def close(self) -> None:
        if self._loop.is_running():  # its thread is still stuck in an attempt: leave the loop to it
            return
        if self._client is not None:
            self._loop.run_until_complete(self._client.aclose())
        self._loop.close()
