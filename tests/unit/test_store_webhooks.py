"""Webhooks against a local HTTP receiver that verifies the HMAC signature; retries with backoff."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sightline.testing import messages as samples
from sinks.outbound import Outbound, to_item
from sinks.webhooks import SIGNATURE_HEADER, WebhookTarget, sign, verify

SECRET = "whsec-test-0123456789"


class Receiver:
    """Answers the first `fail_first` posts with 503, then 204; records verified deliveries."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.posts = 0
        self.verified: list[dict[str, object]] = []
        self.rejected = 0
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rx.posts += 1
                if rx.posts <= rx.fail_first:
                    self.send_response(503)
                elif verify(SECRET, body, self.headers.get(SIGNATURE_HEADER, "")):
                    rx.verified.append({"headers": dict(self.headers), "body": json.loads(body)})
                    self.send_response(204)
                else:
                    rx.rejected += 1
                    self.send_response(401)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver(fail_first=2)
    yield rx
    rx.close()


def test_signed_delivery_after_retries(receiver: Receiver) -> None:
    sleeps: list[float] = []
    target = WebhookTarget(receiver.url, SECRET, retries=3, backoff_s=0.1, sleep=sleeps.append)
    ev = samples.event()
    item = to_item(ev)
    assert item is not None
    assert target.deliver(item) is True
    assert receiver.posts == 3 and len(receiver.verified) == 1 and receiver.rejected == 0
    assert len(sleeps) == 2 and 0.08 <= sleeps[0] <= 0.12 and 0.16 <= sleeps[1] <= 0.24  # exponential
    got = receiver.verified[0]
    assert got["body"] == {
        "type": "object_event",
        "id": ev.event_id,
        "data": ev.model_dump(mode="json", by_alias=True),
    }
    assert got["headers"]["X-Sightline-Id"] == ev.event_id  # type: ignore[index]
    target.close()


def test_wrong_secret_is_rejected_and_gives_up(receiver: Receiver) -> None:
    receiver.fail_first = 0
    target = WebhookTarget(receiver.url, "not-the-secret", retries=2, sleep=lambda _s: None)
    item = to_item(samples.event())
    assert item is not None
    assert target.deliver(item) is False  # 401 is not retried
    assert receiver.posts == 1 and receiver.rejected == 1


def test_unreachable_receiver_retries_then_gives_up() -> None:
    sleeps: list[float] = []
    target = WebhookTarget("http://127.0.0.1:1/hook", SECRET, retries=2, backoff_s=0.01, sleep=sleeps.append)
    item = to_item(samples.event())
    assert item is not None
    assert target.deliver(item) is False and len(sleeps) == 2


def test_signature_checks() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body, 1_000)
    assert verify(SECRET, body, header, now=1_010)
    assert not verify(SECRET, body + b" ", header, now=1_010)  # tampered body
    assert not verify(SECRET, body, header, now=1_000 + 3600)  # replayed much later
    assert not verify(SECRET, body, "garbage", now=1_010)


def test_outbound_queue_is_bounded_and_counts_drops(receiver: Receiver) -> None:
    receiver.fail_first = 0
    gate = threading.Event()

    class Slow:
        name = "slow"

        def deliver(self, _item: object) -> bool:
            gate.wait(5)
            return True

        def close(self) -> None:
            pass

    out = Outbound([Slow()], queue_size=3)  # type: ignore[list-item]
    out.publish([samples.event(track_id=f"t{i}") for i in range(10)])
    gate.set()
    out.close()
    counters = out.counters()
    assert counters["outbound_slow_dropped_oldest"] >= 6
    assert counters["outbound_slow_delivered"] + counters["outbound_slow_dropped_oldest"] == 10


def test_alerts_go_out_like_events() -> None:
    """A new alert stored by the sink is delivered as `type: alert` (webhook) and on
    `<prefix>/<camera>/<rule>/alert` (MQTT); a redelivered one is not new, so it is not sent."""
    from datetime import UTC, datetime

    from bus.contracts import Alert
    from sinks.mqtt import topic_for
    from sinks.store import Store

    rx = Receiver(fail_first=0)
    try:
        alert = Alert(
            alert_id="a-1", rule_id="fence-in", camera_id="door", condition="cross", direction="in",
            pts_s=3.0, wall_ts=datetime(2026, 1, 1, tzinfo=UTC),
        )  # fmt: skip
        store = Store("sqlite://")
        fresh = store.write([alert])
        assert store.write([alert]) == []  # the same alert again is not news
        out = Outbound([WebhookTarget(rx.url, SECRET, retries=0)])
        out.publish(fresh)
        out.close()
        assert [p["body"]["type"] for p in rx.verified] == ["alert"]
        assert rx.verified[0]["body"]["data"]["direction"] == "in"  # type: ignore[index]
        item = to_item(alert)
        assert item is not None and topic_for("sightline", item) == "sightline/door/fence-in/alert"
        store.close()
    finally:
        rx.close()
