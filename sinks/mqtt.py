"""MQTT: one message per event on `<prefix>/<camera>/<query>/<phase>` (summaries on `.../summary`).

Home-automation friendly: plain JSON payloads, QoS 1, topic levels a rule can match with
`sightline/+/+/start`. The client reconnects by itself (paho's loop thread).
"""

from __future__ import annotations

import json
import logging
import threading
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bus.redact import redact_url
from sinks.outbound import Item

log = logging.getLogger(__name__)


def topic_for(prefix: str, item: Item) -> str:
    # ids match ID_PATTERN (no '/', '+', '#'), so they are safe topic levels.
    return f"{prefix}/{item.camera_id}/{item.query_id}/{item.phase}"


class MqttTarget:
    def __init__(self, url: str, prefix: str = "sightline", publish_timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
            raise ValueError(f"mqtt_url must be mqtt://host[:port], got {redact_url(url)!r}")
        self.name = "mqtt"
        self.prefix = prefix.rstrip("/")
        self.timeout_s = publish_timeout_s
        self.display = redact_url(url)
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme in ("mqtts", "ssl"):
            self.client.tls_set()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(1, 30)
        default_port = 8883 if parts.scheme in ("mqtts", "ssl") else 1883
        self.client.connect_async(parts.hostname or "127.0.0.1", parts.port or default_port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("mqtt %s refused the connection: %s", self.display, reason)
            return
        log.info("mqtt connected to %s", self.display)
        self.connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        self.connected.clear()

    def deliver(self, item: Item) -> bool:
        if not self.connected.wait(self.timeout_s):
            log.warning("mqtt %s not connected; dropping %s", self.display, item.id)
            return False
        payload = json.dumps(item.payload, separators=(",", ":"))
        info = self.client.publish(topic_for(self.prefix, item), payload, qos=1)
        info.wait_for_publish(self.timeout_s)
        return bool(info.is_published())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
