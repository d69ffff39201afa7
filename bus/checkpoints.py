"""Per-camera state on a changelog topic, so a partition's new owner continues where the last stopped
(the analyzer's tracks, the rules process's evaluator).

Each checkpoint is keyed by camera and written to the same partition number as the
camera's frames. To know it has read a partition to its end without trusting
end_offsets (wrong on some brokers), the restorer writes a unique marker and reads
until it comes back.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from kafka.structs import TopicPartition

from bus.kafka import Producer, make_consumer

log = logging.getLogger(__name__)
MARKER_PREFIX = b"__marker__:"


def write(producer: Producer, topic: str, partition: int, camera_id: str, state: dict[str, Any]) -> None:
    producer.send_raw(
        topic, camera_id.encode(), json.dumps(state, separators=(",", ":")).encode(), partition=partition
    )


def restore(
    bootstrap: str,
    producer: Producer,
    topic: str,
    partitions: Iterable[int],
    timeout_s: float = 20.0,
    client_id: str = "sightline-analyzer-restore",
) -> dict[str, dict[str, Any]]:
    """Latest checkpoint per camera in the given partitions."""
    parts = sorted(set(partitions))
    if not parts:
        return {}
    marker = MARKER_PREFIX + uuid.uuid4().hex.encode()
    for p in parts:
        producer.send_raw(topic, marker, b"", partition=p)
    producer.flush()
    consumer = make_consumer(bootstrap, [], None, client_id=client_id)
    states: dict[str, dict[str, Any]] = {}
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        pending = set(parts)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"checkpoint restore of {topic} {sorted(pending)} timed out")
            for tp, records in consumer.poll(timeout_ms=200).items():
                for r in records:
                    if r.key == marker:
                        pending.discard(tp.partition)
                    elif r.key and not r.key.startswith(MARKER_PREFIX) and r.value:
                        try:
                            states[r.key.decode()] = json.loads(r.value)
                        except ValueError:
                            log.warning("unreadable checkpoint for %r ignored", r.key)
    finally:
        consumer.close()
    return states
