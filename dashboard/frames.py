"""The latest frames of one camera, read from the frames topic (for /api/ask).

No consumer group: assign the camera's partition, seek a little before the end and read
forward until the partition is drained. The end offset Tansu reports can lag the true end
(see notes: it is the last batch's base offset + 1), which only means we read a bit more.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition

from bus.contracts import FrameMeta
from bus.kafka import PoisonMessage, decode_frame


def partition_for(key: str, partitions: int) -> int:
    """The partition the default (Java-compatible) partitioner puts `key` on."""
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


def latest_frames(
    bootstrap: str,
    topic: str,
    camera_id: str,
    *,
    seconds: float | None = None,
    lookback: int = 48,
    timeout_s: float = 5.0,
) -> list[tuple[FrameMeta, bytes]]:
    """The newest frame (or the frames of the last `seconds` of media time), oldest first."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="sightline-api-ask",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=16_777_216,
    )
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            return []
        tp = TopicPartition(topic, partition_for(camera_id, len(parts)))
        consumer.assign([tp])
        end = consumer.end_offsets([tp]).get(tp, 0)
        consumer.seek(tp, max(0, end - lookback))
        frames: list[tuple[FrameMeta, bytes]] = []
        deadline = time.monotonic() + timeout_s
        empty_polls = 0
        while empty_polls < 2 and time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=200, max_records=64)
            records = [r for batch in got.values() for r in batch]
            empty_polls = 0 if records else empty_polls + 1
            for rec in records:
                if rec.key != camera_id.encode():
                    continue
                try:
                    frames.append(decode_frame(rec))
                except PoisonMessage:
                    continue
    finally:
        consumer.close()
    if not frames:
        return []
    if seconds is None:
        return frames[-1:]
    last = frames[-1][0]
    return [
        f for f in frames if f[0].source_session == last.source_session and f[0].pts_s >= last.pts_s - seconds
    ]
