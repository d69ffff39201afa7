"""Home Assistant MQTT discovery against the local Mosquitto, with a real subscriber.

The real processes play a clip in which a red figure enters at 3 s and leaves at 9 s (the
scripted GLM server answers by colour); the subscriber sees the retained discovery configs, the
occupancy/count states going on and off, the removal when the camera is deleted, and the
availability going offline when the sink stops.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from conftest import need, port_open
from paho.mqtt.enums import CallbackAPIVersion

from bus.contracts import CameraSpec
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer
from sinks.homeassistant import object_id

from stackkit import Stack, wait_for

pytestmark = pytest.mark.e2e


class Subscriber:
    """Everything published under the given prefixes, in arrival order: (topic, payload, retained)."""

    def __init__(self, *prefixes: str) -> None:
        self.seen: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        ready = threading.Event()

        def on_connect(c: mqtt.Client, *_a: object) -> None:
            for p in prefixes:
                c.subscribe(f"{p}/#", qos=1)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert ready.wait(5)

    def _on_message(self, _c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.append((m.topic, m.payload.decode(), bool(m.retain)))

    def payloads(self, topic: str) -> list[str]:
        with self._lock:
            return [p for t, p, _ in self.seen if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def ordered_within(values: list[str], wanted: list[str]) -> bool:
    """`wanted` appears in `values` in that order (other values may come between)."""
    it = iter(values)
    return all(any(v == w for v in it) for w in wanted)


@pytest.fixture
def glm() -> Iterator[ScriptedServer]:
    with ScriptedServer({"mode": "colour"}) as server:
        yield server


def test_discovery_states_and_removal_seen_by_a_subscriber(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    red_figure_clip: tuple[Path, Figure],
    glm: ScriptedServer,
) -> None:
    need(port_open("127.0.0.1", 1883), "Mosquitto is not listening on 127.0.0.1:1883")
    run = uuid.uuid4().hex[:8]
    discovery, prefix = f"ha-test-{run}", f"sightline-test-{run}"
    sub = Subscriber(discovery, prefix)
    stack = Stack(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "data",
        SIGHTLINE_ENGINE__TYPE="openai",
        SIGHTLINE_ENGINE__BASE_URL=glm.base_url,
        SIGHTLINE_ENGINE__API_KEY="test",
        SIGHTLINE_STORE__MQTT_URL="mqtt://127.0.0.1:1883",
        SIGHTLINE_STORE__MQTT_TOPIC_PREFIX=prefix,
        SIGHTLINE_HOMEASSISTANT__ENABLED="true",
        SIGHTLINE_HOMEASSISTANT__DISCOVERY_PREFIX=discovery,
    ).start_all(("ingest", "analyze", "rules", "sink", "serve"))
    oid = object_id("door", "red")
    occupancy_cfg = f"{discovery}/binary_sensor/sightline/{oid}/config"
    count_cfg = f"{discovery}/sensor/sightline/{oid}/config"
    alerts_cfg = f"{discovery}/event/sightline/{object_id('door', 'alerts')}/config"
    occupancy, count = f"{prefix}/ha/door/red/occupancy", f"{prefix}/ha/door/red/count"
    availability = f"{prefix}/ha/availability"
    try:
        for path, body in (
            ("/api/queries", {"id": "red", "text": "people in red"}),
            ("/api/zones", {"id": "hall", "camera": "door", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}),
            ("/api/rules", {"id": "red-in", "query": "red", "when": {"enter": {"zone": "hall"}}}),
        ):
            r = httpx.post(f"{stack.api}{path}", json=body, timeout=10)
            assert r.status_code == 201, r.text
        clip, _ = red_figure_clip
        stack.register(CameraSpec(id="door", url=str(clip), realtime=True))
        wait_for(
            lambda: all(sub.payloads(t) for t in (occupancy_cfg, count_cfg, alerts_cfg)), 60, "configs", stack
        )
        config = json.loads(sub.payloads(occupancy_cfg)[-1])
        assert config["device_class"] == "occupancy" and config["state_topic"] == occupancy
        assert config["availability_topic"] == availability and config["device"]["identifiers"] == [
            "sightline_door"
        ]
        assert json.loads(sub.payloads(count_cfg)[-1])["state_topic"] == count
        assert "enter" in json.loads(sub.payloads(alerts_cfg)[-1])["event_types"]
        assert "online" in sub.payloads(availability)

        # The figure enters (3 s) and leaves (9 s): on, then off again.
        wait_for(
            lambda: ordered_within(sub.payloads(occupancy), ["OFF", "ON", "OFF"]),
            90,
            "occupancy on/off",
            stack,
        )
        assert ordered_within(sub.payloads(count), ["0", "1", "0"]), sub.payloads(count)
        wait_for(lambda: bool(sub.payloads(f"{prefix}/ha/door/alert")), 30, "the alert event", stack)
        alert = json.loads(sub.payloads(f"{prefix}/ha/door/alert")[0])
        assert alert["event_type"] == "enter" and alert["rule_id"] == "red-in" and alert["zone_id"] == "hall"

        # A late subscriber (Home Assistant restarting) gets the configs and the current state, retained.
        late = Subscriber(discovery, prefix)
        try:
            wait_for(
                lambda: late.payloads(occupancy) == ["OFF"] and bool(late.payloads(occupancy_cfg)),
                10,
                "retained",
            )
            assert all(
                retained for t, _, retained in late.seen if t in (occupancy_cfg, occupancy, availability)
            )
        finally:
            late.close()

        # Deleting the query removes its two entities (and clears their states); the camera's alert
        # entity stays until the camera goes too.
        r = httpx.delete(f"{stack.api}/api/queries/red", timeout=10)
        assert r.status_code == 204, r.text
        gone = (occupancy_cfg, count_cfg, occupancy, count)
        wait_for(
            lambda: all(sub.payloads(t)[-1] == "" for t in gone), 30, "the query's entities removed", stack
        )
        assert sub.payloads(alerts_cfg)[-1] != ""
        r = httpx.delete(f"{stack.api}/api/cameras/door", timeout=10)
        assert r.status_code == 204, r.text
        wait_for(lambda: sub.payloads(alerts_cfg)[-1] == "", 30, "the camera's alert entity removed", stack)
        assert all(sub.payloads(t)[-1] == "" for t in (occupancy_cfg, count_cfg))  # nothing came back

        # Availability follows the process: a SIGKILLed sink leaves its last will; a new one is online.
        stack.kill("sink")
        wait_for(lambda: sub.payloads(availability)[-1] == "offline", 30, "the last will", stack)
        stack.start("sink")
        wait_for(lambda: sub.payloads(availability)[-1] == "online", 60, "online again", stack)
    finally:
        stack.stop()
        time.sleep(0.5)
        sub.close()
    assert sub.payloads(availability)[-1] == "offline"  # a clean stop says so; a crash leaves the will
