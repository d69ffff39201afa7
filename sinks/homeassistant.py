"""Home Assistant MQTT discovery: each camera × grounding query becomes two entities, each camera an
`event` entity for its alerts, announced on HA's discovery topics by the sink.

- `binary_sensor` (device class occupancy): `ON` while a track of that query is open on that
  camera; `sensor`: how many are open. States are retained, so HA shows the current state after
  its own restart.
- `event` per camera: one message per alert (event type = the rule's condition).
- Configs are retained and reconciled against the store's cameras and queries (every
  `RECONCILE_S`, and after every reconnect): a new camera or query is announced, a deleted or
  disabled one gets an empty retained config, which is how HA removes an entity.
- Availability follows the sink process: `<prefix>/availability` is `online` (retained) once
  connected and `offline` on a clean stop, and the broker publishes `offline` as the last will
  when the process dies without saying so.

The open tracks are folded from the events this sink stores; at start they are read from the
store (tracks not ended and seen within `STALE_S`), so a restart does not flip a sensor to off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import and_, select

from bus.contracts import Alert, CameraSpec, Envelope, ObjectEvent, QuerySpec
from bus.redact import redact_url
from configs.settings import Settings
from sinks import tables as t
from sinks.store import Store

log = logging.getLogger(__name__)
RECONCILE_S = 2.0
STALE_S = 600.0  # an open track not seen for this long (a crash ate its end) no longer counts
CONDITIONS = ["enter", "leave", "dwell", "cross", "count", "absent"]
Key = tuple[str, str]  # (camera_id, query_id)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def object_id(*parts: str) -> str:
    """HA object ids allow [A-Za-z0-9_-]; a short hash keeps `a.b` and `a_b` apart."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=4).hexdigest()
    return "_".join(_slug(p) for p in parts) + "_" + digest


class HomeAssistant:
    def __init__(self, settings: Settings, store: Store) -> None:
        url = settings.store.mqtt_url
        if not url:
            raise ValueError("homeassistant.enabled needs store.mqtt_url (mqtt://host[:port])")
        cfg = settings.homeassistant
        self.store, self.discovery, self.node = store, cfg.discovery_prefix.rstrip("/"), cfg.node_id
        self.prefix = f"{settings.store.mqtt_topic_prefix.rstrip('/')}/ha"
        self.availability = f"{self.prefix}/availability"
        self.display = redact_url(url)
        self.open: dict[Key, set[str]] = {}
        self.published: dict[str, str] = {}  # config topic -> payload last sent
        self.announced: set[Key] = set()  # (camera, query) pairs whose entities are announced
        self._lock = threading.Lock()
        self._resync = threading.Event()
        self._next = 0.0
        parts = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme in ("mqtts", "ssl"):
            self.client.tls_set()
        self.client.will_set(self.availability, "offline", qos=1, retain=True)
        self.client.max_queued_messages_set(5000)  # bounded while disconnected; a reconnect resyncs all
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(1, 30)
        port = parts.port or (8883 if parts.scheme in ("mqtts", "ssl") else 1883)
        self._load_open_tracks()
        self.client.connect_async(parts.hostname or "127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    # ---- MQTT -----------------------------------------------------------------------------------
    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("home assistant mqtt %s refused the connection: %s", self.display, reason)
            return
        log.info("home assistant discovery on %s (prefix %s)", self.display, self.discovery)
        self._publish(self.availability, "online")
        self._resync.set()  # every config and state again: the broker may have lost its retained ones

    def _publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1, retain=True)

    # ---- entities ---------------------------------------------------------------------------------
    def _device(self, cam: CameraSpec) -> dict[str, Any]:
        return {
            "identifiers": [f"sightline_{cam.id}"],
            "name": cam.name or cam.id,
            "manufacturer": "Sightline",
            "model": "camera",
        }

    def _state_topic(self, key: Key, what: str) -> str:
        return f"{self.prefix}/{key[0]}/{key[1]}/{what}"

    def _configs(self, cam: CameraSpec, q: QuerySpec) -> dict[str, dict[str, Any]]:
        oid = object_id(cam.id, q.id)
        common = {
            "availability_topic": self.availability,
            "device": self._device(cam),
            "origin": {"name": "Sightline"},
        }
        return {
            f"{self.discovery}/binary_sensor/{self.node}/{oid}/config": {
                **common,
                "name": f"{q.text} occupancy",
                "unique_id": f"sightline_{oid}_occupancy",
                "device_class": "occupancy",
                "state_topic": self._state_topic((cam.id, q.id), "occupancy"),
                "payload_on": "ON",
                "payload_off": "OFF",
            },
            f"{self.discovery}/sensor/{self.node}/{oid}/config": {
                **common,
                "name": f"{q.text} count",
                "unique_id": f"sightline_{oid}_count",
                "state_topic": self._state_topic((cam.id, q.id), "count"),
                "state_class": "measurement",
                "unit_of_measurement": "objects",
            },
        }

    def _alert_config(self, cam: CameraSpec) -> tuple[str, dict[str, Any]]:
        oid = object_id(cam.id, "alerts")
        return f"{self.discovery}/event/{self.node}/{oid}/config", {
            "availability_topic": self.availability,
            "device": self._device(cam),
            "origin": {"name": "Sightline"},
            "name": "alerts",
            "unique_id": f"sightline_{oid}",
            "state_topic": f"{self.prefix}/{cam.id}/alert",
            "event_types": CONDITIONS,
        }

    def reconcile(self) -> None:
        """Announce what the store has and remove what it no longer has (empty retained config)."""
        cams = [c for c in self.store.cameras() if c.enabled]
        queries = [q for q in self.store.queries() if q.kind == "grounding"]
        wanted: dict[str, str] = {}
        keys: list[Key] = []
        for cam in cams:
            topic, cfg = self._alert_config(cam)
            wanted[topic] = json.dumps(cfg, sort_keys=True)
            for q in queries:
                if q.applies_to(cam.id):
                    keys.append((cam.id, q.id))
                    for topic, cfg in self._configs(cam, q).items():
                        wanted[topic] = json.dumps(cfg, sort_keys=True)
        resync = self._resync.is_set()
        self._resync.clear()
        with self._lock:
            for topic in [tp for tp in self.published if tp not in wanted]:
                self._publish(topic, "")  # an empty retained config: HA removes the entity
                del self.published[topic]
            for key in self.announced - set(keys):  # and its retained states go with it
                self._publish(self._state_topic(key, "occupancy"), "")
                self._publish(self._state_topic(key, "count"), "")
            for topic, payload in wanted.items():
                if resync or self.published.get(topic) != payload:
                    self._publish(topic, payload)
                    self.published[topic] = payload
            for key in keys:
                if resync or key not in self.announced:
                    self._publish_state(key)
            self.announced = set(keys)

    def _publish_state(self, key: Key) -> None:
        n = len(self.open.get(key, ()))
        self._publish(self._state_topic(key, "occupancy"), "ON" if n else "OFF")
        self._publish(self._state_topic(key, "count"), str(n))

    # ---- the sink's feed --------------------------------------------------------------------------
    def stored(self, messages: Sequence[Envelope]) -> None:
        """Fold freshly stored events into the open tracks; publish the states that changed, and alerts."""
        changed: set[Key] = set()
        with self._lock:
            for msg in messages:
                if isinstance(msg, ObjectEvent):
                    key = (msg.camera_id, msg.query_id)
                    tracks = self.open.setdefault(key, set())
                    before = len(tracks)
                    if msg.phase == "end":
                        tracks.discard(msg.track_id)
                    else:
                        tracks.add(msg.track_id)
                    if len(tracks) != before:
                        changed.add(key)
                elif isinstance(msg, Alert):
                    body = {"event_type": msg.condition, "rule_id": msg.rule_id, "severity": msg.severity}
                    body |= {k: v for k, v in (("zone_id", msg.zone_id), ("line_id", msg.line_id)) if v}
                    self.client.publish(f"{self.prefix}/{msg.camera_id}/alert", json.dumps(body), qos=1)
            for key in changed:
                self._publish_state(key)

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next or self._resync.is_set():
            self._next = now + RECONCILE_S
            try:
                self.reconcile()
            except Exception:  # the store being away must not stop the sink; next tick retries
                log.warning("home assistant reconcile failed", exc_info=True)

    def _load_open_tracks(self) -> None:
        since = time.time() - STALE_S
        q = select(t.tracks.c.camera_id, t.tracks.c.query_id, t.tracks.c.track_id).where(
            and_(t.tracks.c.ended.is_(False), t.tracks.c.last_ts >= since)
        )
        with self.store.engine.connect() as conn:
            for cam, qid, track in conn.execute(q):
                self.open.setdefault((cam, qid), set()).add(track)

    def close(self) -> None:
        info = self.client.publish(self.availability, "offline", qos=1, retain=True)
        with contextlib.suppress(RuntimeError, ValueError):  # not connected: the last will says it
            info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()
