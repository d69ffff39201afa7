"""Outbound delivery of new events and summaries: webhooks and MQTT.

Best effort by design: each target has its own bounded queue (drop_oldest, counted) and
thread, so a slow receiver never stalls the sink and never blocks another target. Only
messages the store had not seen before are sent (a replay does not re-notify); receivers
can still dedupe on the id header/field.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bus.contracts import Alert, Envelope, ObjectEvent, Summary
from configs import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    kind: str  # "object_event" | "summary" | "alert"
    id: str
    camera_id: str
    query_id: str  # for an alert: its rule id (MQTT topic <prefix>/<camera>/<rule>/alert)
    phase: str  # start / update / end, or "summary", or "alert"
    payload: dict[str, Any]


def to_item(msg: Envelope) -> Item | None:
    if isinstance(msg, ObjectEvent):
        data = msg.model_dump(mode="json", by_alias=True)
        return Item("object_event", msg.event_id, msg.camera_id, msg.query_id, msg.phase, data)
    if isinstance(msg, Summary):
        data = msg.model_dump(mode="json", by_alias=True)
        return Item("summary", msg.summary_id, msg.camera_id, msg.query_id, "summary", data)
    if isinstance(msg, Alert):
        data = msg.model_dump(mode="json", by_alias=True)
        return Item("alert", msg.alert_id, msg.camera_id, msg.rule_id, "alert", data)
    return None


class Target(Protocol):
    name: str

    def deliver(self, item: Item) -> bool: ...

    def close(self) -> None: ...


class DropOldestQueue:
    """Bounded FIFO; when full the oldest item is dropped and counted (policy: drop_oldest)."""

    def __init__(self, size: int) -> None:
        self._items: deque[Item] = deque()
        self._size = size
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: Item) -> None:
        with self._cond:
            if len(self._items) >= self._size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> Item | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        return len(self._items)


class Worker:
    """One target, one queue, one thread."""

    def __init__(self, target: Target, queue_size: int) -> None:
        self.target = target
        self.queue = DropOldestQueue(queue_size)
        self.counters: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"outbound-{target.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not (self._stop.is_set() and not len(self.queue)):
            item = self.queue.get(timeout=0.2)
            if item is None:
                continue
            try:
                ok = self.target.deliver(item)
            except Exception:  # a broken target must not kill the thread
                log.exception("outbound %s failed", self.target.name)
                ok = False
            self.counters["delivered" if ok else "failed"] += 1

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        self.target.close()


class Outbound:
    def __init__(self, targets: Sequence[Target], queue_size: int = 1000) -> None:
        self.workers = [Worker(t, queue_size) for t in targets]

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        cfg = settings.store
        targets: list[Target] = []
        if cfg.webhook_urls:
            from sinks.webhooks import WebhookTarget

            targets += [  # one name each, so one failing target's counters are not hidden by another's
                WebhookTarget(
                    url,
                    cfg.webhook_secret,
                    cfg.webhook_timeout_s,
                    cfg.webhook_retries,
                    name=f"webhook{i}" if len(cfg.webhook_urls) > 1 else "webhook",
                    allow_link_local=cfg.webhook_allow_link_local,
                )
                for i, url in enumerate(cfg.webhook_urls)
            ]
        if cfg.mqtt_url:
            from sinks.mqtt import MqttTarget

            targets.append(MqttTarget(cfg.mqtt_url, cfg.mqtt_topic_prefix))
        return cls(targets, cfg.outbound_queue)

    def publish(self, messages: Sequence[Envelope]) -> None:
        if not self.workers:
            return
        for msg in messages:
            item = to_item(msg)
            if item is not None:
                for w in self.workers:
                    w.queue.put(item)

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for w in self.workers:
            for k, v in w.counters.items():
                out[f"outbound_{w.target.name}_{k}"] = float(v)
            out[f"outbound_{w.target.name}_dropped_oldest"] = float(w.queue.dropped)
        return out

    def close(self) -> None:
        for w in self.workers:
            w.close()
