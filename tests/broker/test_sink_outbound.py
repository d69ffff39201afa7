"""Sink → webhooks and MQTT, end to end: Kafka → sink → store → signed POST / Mosquitto message."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest
from conftest import need, port_open
from paho.mqtt.enums import CallbackAPIVersion

from bus.kafka import Producer
from bus.topics import Topics
from configs import Settings
from sightline.testing import messages as samples
from sinks.service import run as run_sink
from sinks.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.broker
SECRET = "whsec-broker-test-42"


def _wait(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_events_reach_webhook_and_mqtt(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings]
) -> None:
    need(port_open("127.0.0.1", 1883), "Mosquitto is not listening on 127.0.0.1:1883")
    posts: list[tuple[bool, dict[str, object]]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((verify(SECRET, body, self.headers.get(SIGNATURE_HEADER, "")), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()

    prefix = f"sightline-test/{uuid.uuid4().hex[:8]}"
    received: list[tuple[str, dict[str, object]]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2)
    subscribed = threading.Event()
    sub.on_connect = lambda c, *_a: c.subscribe(f"{prefix}/#", qos=1)
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.on_message = lambda _c, _u, m: received.append((m.topic, json.loads(m.payload)))
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
    assert subscribed.wait(5)

    settings = make_settings(
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix},
        store={
            "retention_days": 36500,
            "webhook_urls": [f"http://127.0.0.1:{hook.server_address[1]}/hook"],
            "webhook_secret": SECRET,
            "mqtt_url": "mqtt://127.0.0.1:1883",
            "mqtt_topic_prefix": prefix,
        },
    )
    stop = threading.Event()
    sink = threading.Thread(target=run_sink, args=(settings, stop), daemon=True)
    sink.start()
    events = samples.track("porch", "red-people", "t7", 0, 4)
    try:
        producer = Producer(kafka_bootstrap)
        topics = Topics.from_config(settings.bus)
        for ev in events:
            producer.send(topics.detections, ev.camera_id, ev)
        producer.send(topics.summaries, "porch", samples.summary("porch", "what"))
        producer.flush()
        _wait(lambda: len(received) >= 4 and len(posts) >= 4)
        # The same events again (a redelivery): the store has them, so nobody is notified twice.
        for ev in events:
            producer.send(topics.detections, ev.camera_id, ev)
        producer.flush()
        producer.close()
        time.sleep(1.5)
    finally:
        stop.set()
        sink.join(15)
        sub.loop_stop()
        sub.disconnect()
        hook.shutdown()
        hook.server_close()

    assert sorted(t for t, _ in received) == sorted(
        [
            f"{prefix}/porch/red-people/start",
            f"{prefix}/porch/red-people/update",
            f"{prefix}/porch/red-people/end",
            f"{prefix}/porch/what/summary",
        ]
    )
    start = next(p for t, p in received if t.endswith("/start"))
    assert start["event_id"] == events[0].event_id and start["bbox"] == list(events[0].bbox)
    assert len(posts) == 4 and all(ok for ok, _ in posts)
    assert {p["id"] for _, p in posts} == {
        *(e.event_id for e in events),
        samples.summary("porch", "what").summary_id,
    }
