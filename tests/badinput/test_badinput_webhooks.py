"""Webhook receivers that misbehave (issue 18): a reply that drips, a reply of 150 MB, a slow target
next to a good one, and addresses that only show what they are once resolved."""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from configs import Settings
from sightline.testing import messages as samples
from sinks.outbound import Item, Outbound, to_item
from sinks.webhooks import WebhookTarget


def _item() -> Item:
    item = to_item(samples.event())
    assert item is not None
    return item


class RawServer:
    """Reads a request, then answers with `reply(conn)`; one thread per connection."""

    def __init__(self, reply: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.reply = reply
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                self.reply(conn)
            except OSError:
                pass  # the client hung up: that is what the tests want

    def close(self) -> None:
        self.sock.close()


def _drip(conn: socket.socket) -> None:
    """A 200 whose status line and headers come one byte every 0.3 s (60 s in all)."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * 200 + b"\r\n\r\n":
        conn.sendall(bytes([byte]))
        time.sleep(0.3)


def _huge(conn: socket.socket) -> None:
    """A 200 with a 150 MB body, sent as fast as the client takes it."""
    size = 150 << 20
    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"\0" * (1 << 20)
    for _ in range(size >> 20):
        conn.sendall(chunk)


@pytest.fixture
def drip() -> Iterator[RawServer]:
    server = RawServer(_drip)
    yield server
    server.close()


def test_a_dripping_reply_is_cut_at_the_total_timeout(drip: RawServer) -> None:
    target = WebhookTarget(drip.url, None, timeout_s=1.0, retries=1, sleep=lambda _s: None)
    started = time.monotonic()
    assert target.deliver(_item()) is False
    took = time.monotonic() - started
    target.close()
    assert drip.accepted == 2  # tried, timed out, retried once
    assert took < 6, f"held {took:.1f}s: the timeout was per read, not per attempt"


def test_a_huge_reply_is_not_read() -> None:
    server = RawServer(_huge)
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        target = WebhookTarget(server.url, None, timeout_s=10.0, retries=0)
        assert target.deliver(_item()) is True  # the status line is all a delivery needs
        target.close()
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    finally:
        server.close()
    assert grown_mib < 50, f"peak memory grew by {grown_mib:.0f} MiB: the reply was read"


class Receiver:
    def __init__(self) -> None:
        self.got: list[dict[str, str]] = []
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                rx.got.append({"host": self.headers["Host"], "id": body["id"]})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_slow_target_does_not_delay_another_and_each_has_its_counters(
    drip: RawServer, make_settings: Callable[..., Settings]
) -> None:
    rx = Receiver()
    settings = make_settings(
        store={
            "webhook_urls": [drip.url, f"http://127.0.0.1:{rx.port}/hook"],
            "webhook_timeout_s": 1.0,
            "webhook_retries": 0,
        }
    )
    out = Outbound.from_settings(settings)
    try:
        out.publish([samples.event(track_id=f"t{i}") for i in range(5)])
        deadline = time.monotonic() + 3  # the slow one needs 5 s for its five; the good one is not behind it
        while len(rx.got) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(rx.got) == 5
    finally:
        out.close()
        rx.close()
    counters = out.counters()
    assert counters["outbound_webhook1_delivered"] == 5
    assert counters.get("outbound_webhook0_failed", 0) >= 1 and "outbound_webhook0_delivered" not in counters


def test_delivery_keeps_the_name_in_host_while_connecting_to_the_checked_address() -> None:
    rx = Receiver()
    try:
        target = WebhookTarget(f"http://localhost:{rx.port}/hook", None, retries=0)
        assert target.deliver(_item()) is True
        target.close()
    finally:
        rx.close()
    assert rx.got[0]["host"] == f"localhost:{rx.port}"


# Spellings of 169.254.169.254 that a literal-IP check at configuration did not see. Built directly
# (as if the config check had been fooled, or DNS changed since): refused at delivery, nothing sent.
SPELLINGS = ["2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.43518", "[::ffff:169.254.169.254]"]


@pytest.mark.parametrize("host", SPELLINGS)
def test_the_resolved_address_is_checked_at_delivery(host: str, caplog: pytest.LogCaptureFixture) -> None:
    target = WebhookTarget(f"http://{host}:9/latest/meta-data/", None, timeout_s=2.0, retries=2)
    started = time.monotonic()
    assert target.deliver(_item()) is False
    target.close()
    assert "resolves to 169.254.169.254" in caplog.text
    assert time.monotonic() - started < 1.5  # refused at once, not retried or timed out
    allowed = WebhookTarget(f"http://{host}:9/x", None, timeout_s=0.5, retries=0, allow_link_local=True)
    caplog.clear()
    allowed.deliver(_item())  # with the operator's consent it is tried (nothing listens there)
    allowed.close()
    assert "resolves to" not in caplog.text
