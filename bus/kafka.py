"""Thin wrappers over kafka-python: JSON envelopes, frame messages, topic setup, dead letters."""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from bus.contracts import DeadLetter, EndOfStream, Envelope, FrameMeta

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Envelope)
META_HEADER = "sightline-meta"
SCHEMA_HEADER = "schema"
PRODUCER_HEADER = "sightline-producer"  # the worker that produced an event (who did what, in a rebalance)

try:  # kafka-python uses crc32c when importable; without it produce is ~15x slower
    import crc32c  # noqa: F401
except ImportError:  # pragma: no cover - dependency of the package
    log.warning("crc32c is not installed: Kafka throughput will be an order of magnitude lower")


class PoisonMessage(ValueError):
    """A record that cannot be decoded; it belongs on the dead-letter topic."""


def wait_for_broker(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Block until one bootstrap address accepts TCP connections."""
    deadline = time.monotonic() + timeout_s
    hosts = [h.strip() for h in bootstrap.split(",") if h.strip()]
    while True:
        for hp in hosts:
            host, _, port = hp.rpartition(":")
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
                    return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka broker at {bootstrap} is not reachable after {timeout_s:.0f}s")
        time.sleep(0.1)


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int, replication: int = 1) -> None:
    """Create missing topics with their final partition count (Tansu cannot add partitions later)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sightline-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, partitions, replication) for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(missing)
    finally:
        admin.close()


class Producer:
    """Produces envelopes as JSON and frames as JPEG with their metadata in a header."""

    def __init__(self, bootstrap: str, client_id: str = "sightline", max_request_bytes: int = 16_777_216):
        self._p = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            linger_ms=5,
            retries=10,
            max_request_size=max_request_bytes,
            max_in_flight_requests_per_connection=1,  # keeps per-key order across retries
        )

    def send(
        self,
        topic: str,
        key: str | None,
        msg: Envelope,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Any:
        return self._p.send(
            topic,
            partition=partition,
            key=key.encode() if key is not None else None,
            value=msg.to_json(),
            headers=[(SCHEMA_HEADER, msg.SCHEMA.encode()), *headers],
        )

    def send_frame(self, topic: str, meta: FrameMeta, jpeg: bytes) -> Any:
        return self._p.send(
            topic,
            key=meta.camera_id.encode(),
            value=jpeg,
            headers=[(SCHEMA_HEADER, meta.SCHEMA.encode()), (META_HEADER, meta.to_json())],
        )

    def send_end_of_stream(self, topic: str, eos: EndOfStream) -> Any:
        """Mark, in order with a camera's frames, that its source ended (tracks end, windows flush)."""
        return self._p.send(
            topic,
            key=eos.camera_id.encode(),
            value=b"",
            headers=[(SCHEMA_HEADER, eos.SCHEMA.encode()), (META_HEADER, eos.to_json())],
        )

    def send_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> Any:
        return self._p.send(topic, key=key, value=value, headers=list(headers), partition=partition)

    def flush(self, timeout_s: float | None = 30.0) -> None:
        self._p.flush(timeout=timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        try:
            self._p.close(timeout=timeout_s)
        except KafkaError:  # pragma: no cover - closing a dead connection
            log.warning("producer close failed", exc_info=True)


def make_consumer(
    bootstrap: str,
    topics: Sequence[str],
    group_id: str | None,
    *,
    client_id: str = "sightline",
    max_poll_records: int = 64,
    session_timeout_ms: int = 6000,
) -> KafkaConsumer:
    """A consumer that commits by hand, after its outputs are produced (at-least-once)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(300, session_timeout_ms // 4),
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=16_777_216,
    )
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def poll(
    consumer: KafkaConsumer, timeout_ms: int, max_records: int | None = None
) -> dict[TopicPartition, list[ConsumerRecord]]:
    """`consumer.poll` that rides out a broker outage instead of ending the process.

    kafka-python 3.0 can raise a retriable error (e.g. `KafkaConnectionError`) out of poll while
    the broker is down: its coordinator lookup re-raises a failed metadata refresh. That is an
    outage, not a bug in the data: say so, wait a little, answer "nothing yet", and the next call
    reconnects once the broker is back.
    """
    try:
        return dict(consumer.poll(timeout_ms=timeout_ms, max_records=max_records))
    except KafkaError as exc:
        if not exc.retriable:
            raise
        log.warning("broker unavailable, polling again: %s", exc)
        time.sleep(max(timeout_ms, 200) / 1000)
        return {}


def commit_offsets(consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]) -> bool:
    """Commit; a retriable failure (broker down) is logged and skipped: the next commit covers these
    offsets, or the records are redelivered and, being idempotent downstream, change nothing."""
    if not offsets:
        return True
    try:
        consumer.commit(offsets)
        return True
    except CommitFailedError as exc:
        # The group moved on (a rebalance while we worked, or we were expelled after a pause): the
        # partitions' new owners redo the batch, and idempotent outputs make that harmless.
        log.warning("commit refused, the group has rebalanced: %s", _short(exc))
        return False
    except KafkaError as exc:
        if not exc.retriable:
            raise
        log.warning("commit failed (broker unavailable), a later commit covers it: %s", exc)
        return False


class GroupLease:
    """Whether this consumer is still surely a member of its group, on this host's clock only.

    A process that was paused (SIGSTOP, a frozen VM) or cut off cannot know it was expelled
    until the coordinator answers its next heartbeat; meanwhile it must not act as an owner. The
    coordinator expels a member only after a whole session timeout without a heartbeat, so while
    the last *answered* heartbeat was sent less than (session timeout - one heartbeat interval)
    ago, we are still a member. `renew()` marks a join/sync just completed (the rebalance
    callbacks). The heartbeat times are kafka-python's own bookkeeping (`coordinator.heartbeat`,
    monotonic); the pause tests fail if that ever stops meaning what it says.
    """

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer
        session_ms = int(consumer.config["session_timeout_ms"])
        heartbeat_ms = int(consumer.config["heartbeat_interval_ms"])
        self.length_s = (session_ms - heartbeat_ms) / 1000
        self._anchor = float("-inf")  # monotonic send time of the last answered heartbeat
        self._lock = threading.Lock()

    def renew(self) -> None:
        with self._lock:
            self._anchor = max(self._anchor, time.monotonic())

    def held(self) -> bool:
        hb: Any = getattr(getattr(self._consumer, "_coordinator", None), "heartbeat", None)
        with self._lock:
            if hb is not None and hb.last_receive >= hb.last_send > self._anchor:
                self._anchor = hb.last_send  # the newest heartbeat sent was answered
            return time.monotonic() - self._anchor < self.length_s


def commit(consumer: KafkaConsumer, records: Iterable[ConsumerRecord]) -> None:
    """Commit the offset after the highest record seen per partition."""
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        if tp not in offsets or offsets[tp].offset <= r.offset:
            offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
    commit_offsets(consumer, offsets)


def consumer_lag(consumer: KafkaConsumer) -> dict[tuple[str, int], int]:
    """Messages between the consumer's position and each assigned partition's end, as far as known.

    The end is the highwater mark of the last fetch response (no extra request: `end_offsets` is
    unreliable on some brokers), so a partition nothing was fetched from yet is left out."""
    out: dict[tuple[str, int], int] = {}
    try:
        assigned = consumer.assignment()
    except KafkaError:
        return out
    for tp in assigned:
        try:
            end, position = consumer.highwater(tp), consumer.position(tp, timeout_ms=0)
        except KafkaError:  # revoked meanwhile, or position not known yet
            continue
        if end is not None and position is not None:
            out[(tp.topic, tp.partition)] = max(0, end - position)
    return out


def header(record: ConsumerRecord, name: str) -> bytes | None:
    for k, v in record.headers or ():
        if k == name:
            return bytes(v)
    return None


def decode(record: ConsumerRecord, model: type[M]) -> M:
    try:
        return model.model_validate_json(record.value)
    except ValueError as exc:
        raise PoisonMessage(f"not a valid {model.SCHEMA}: {_short(exc)}") from None


def decode_end_of_stream(record: ConsumerRecord) -> EndOfStream | None:
    """The EndOfStream a frames-topic record carries, or None for an ordinary frame."""
    if header(record, SCHEMA_HEADER) != EndOfStream.SCHEMA.encode():
        return None
    raw = header(record, META_HEADER) or b""
    try:
        return EndOfStream.model_validate_json(raw)
    except ValueError as exc:
        raise PoisonMessage(f"bad end-of-stream marker: {_short(exc)}") from None


def decode_frame(record: ConsumerRecord) -> tuple[FrameMeta, bytes]:
    raw = header(record, META_HEADER)
    if raw is None:
        raise PoisonMessage(f"frame message without a {META_HEADER} header")
    try:
        meta = FrameMeta.model_validate_json(raw)
    except ValueError as exc:
        raise PoisonMessage(f"bad frame metadata: {_short(exc)}") from None
    if not record.value or record.value[:2] != b"\xff\xd8":
        raise PoisonMessage("frame payload is not a JPEG")
    return meta, bytes(record.value)


def dead_letter(producer: Producer, topic: str, record: ConsumerRecord, reason: str, worker: str) -> None:
    value = bytes(record.value or b"")[:65536]
    msg = DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode("utf-8", "replace") if record.key else None,
        reason=reason[:2000],
        worker=worker,
        payload_b64=base64.b64encode(value).decode(),
    )
    producer.send(topic, msg.key, msg)
    log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
