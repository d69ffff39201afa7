"""Create Sightline's Kafka topics with their final partition count and retention; safe to re-run.

    python /app/deploy/init_topics.py --config configs/production.yaml [--grow]

Names and partition counts come from the same config the processes read (bus.topic_prefix,
bus.partitions, bus.replication, bus.max_frame_bytes), so the topics cannot drift from what
ingest and the analyzers expect. Per-topic policy:

- control: compacted, never expires: it is replayed from the start at boot, and the latest
  registration or deletion per `camera:<id>` / `query:<id>` key is all that must survive.
- frames: short retention (they are only useful live) and small segments, because Kafka only
  deletes whole segments; the message size limit follows bus.max_frame_bytes.
- detections, summaries: the store is the system of record; the topic keeps enough for a
  sink to be rebuilt or replayed after an outage.
- analyzer_state: tracker checkpoints keyed by camera, partition-aligned with frames: compacted,
  and deleted after the event retention so long-gone cameras and restore markers do not pile up.
- alerts: like detections (the store keeps them). rules_state: the rules process's
  evaluator checkpoints, partition-aligned with detections, kept like analyzer_state.
- status: heartbeats; a day is plenty. deadletter: long enough for someone to look.
- ingest_slots: the ingest group's unit of camera ownership, `ingest.slots` partitions, empty.

Existing topics get their retention re-applied (so changing it and re-running works). A topic
with fewer partitions than configured is reported; `--grow` adds partitions (not to control:
growing a compacted, keyed topic would split a key's history across partitions).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from bus.kafka import wait_for_broker
from bus.topics import Topics
from configs import ConfigError, Settings, load_settings

log = logging.getLogger("sightline.init_topics")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
HEADER_ROOM = 64 * 1024  # FrameMeta header and record overhead on top of the JPEG


@dataclass(frozen=True)
class Retention:
    frames_h: float = 1.0
    events_days: float = 7.0
    status_h: float = 24.0
    deadletter_days: float = 14.0


def topic_configs(settings: Settings, retention: Retention) -> dict[str, dict[str, str]]:
    """topic name -> Kafka topic configs, for every topic the processes use."""
    t = Topics.from_config(settings.bus)
    frames_ms = int(retention.frames_h * HOUR_MS)
    events_ms = str(int(retention.events_days * DAY_MS))
    return {
        t.control: {"cleanup.policy": "compact", "retention.ms": "-1"},
        t.frames: {
            "cleanup.policy": "delete",
            "retention.ms": str(frames_ms),
            "segment.ms": str(max(60_000, min(frames_ms // 4, HOUR_MS))),
            "max.message.bytes": str(settings.bus.max_frame_bytes + HEADER_ROOM),
        },
        t.detections: {"cleanup.policy": "delete", "retention.ms": events_ms},
        t.summaries: {"cleanup.policy": "delete", "retention.ms": events_ms},
        t.status: {"cleanup.policy": "delete", "retention.ms": str(int(retention.status_h * HOUR_MS))},
        # Tracker checkpoints keyed by camera: the latest per camera matters; delete as well so
        # cameras gone for longer than the event retention (and restore markers) do not pile up.
        t.analyzer_state: {"cleanup.policy": "compact,delete", "retention.ms": events_ms},
        t.alerts: {"cleanup.policy": "delete", "retention.ms": events_ms},
        t.rules_state: {"cleanup.policy": "compact,delete", "retention.ms": events_ms},
        t.recordings: {"cleanup.policy": "delete", "retention.ms": events_ms},
        t.deadletter: {
            "cleanup.policy": "delete",
            "retention.ms": str(int(retention.deadletter_days * DAY_MS)),
        },
    }


def _partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    return {d["name"]: len(d["partitions"]) for d in admin.describe_topics(names)}


def ensure(admin: Any, settings: Settings, retention: Retention, grow: bool = False) -> list[str]:
    """Create or update every topic; returns the problems that need an operator (empty = done)."""
    wanted = topic_configs(settings, retention)
    control = Topics.from_config(settings.bus).control
    parts, repl = settings.bus.partitions, settings.bus.replication
    missing = [n for n in wanted if n not in set(admin.list_topics())]
    if missing:
        # A process's ensure_topics may create one first; the configs are applied to all below anyway.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(n, parts, repl, topic_configs=wanted[n]) for n in missing])
        log.info("created %s with %d partitions", ", ".join(missing), parts)
    # Re-applied every run, so a changed retention takes effect (incremental: other keys are kept).
    # raise_on_unknown=False: the client checks keys against DescribeConfigs, which some
    # Kafka-compatible brokers answer empty; Apache Kafka validates them itself.
    admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n, configs=c) for n, c in wanted.items()],
        raise_on_unknown=False,
    )
    _ensure_slots(admin, settings)
    problems = []
    for name, count in sorted(_partition_counts(admin, list(wanted)).items()):
        if count >= parts:
            continue
        if grow and name != control:
            admin.create_partitions({name: NewPartitions(total_count=parts)})
            log.info("grew %s from %d to %d partitions", name, count, parts)
        else:
            problems.append(f"{name} has {count} partitions, bus.partitions is {parts}")
    return problems


def _ensure_slots(admin: Any, settings: Settings) -> None:
    """The ingest group's slots topic (`ingest.ownership.slots_topic`): `ingest.slots` partitions,
    the unit cameras are assigned in; nothing is ever written to it. Never grown here: a different
    partition count moves cameras, so it is an operator's decision (docs/deploy.md §4)."""
    name = settings.bus.topic("ingest_slots")
    if name in set(admin.list_topics()):
        return
    with contextlib.suppress(TopicAlreadyExistsError):  # an ingest process made it first
        admin.create_topics([NewTopic(name, settings.ingest.slots, settings.bus.replication)])
    log.info("created %s with %d partitions", name, settings.ingest.slots)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="create Sightline's Kafka topics (idempotent)")
    ap.add_argument("--config", "-c", default="configs/production.yaml")
    ap.add_argument("--bootstrap", help="overrides bus.bootstrap")
    ap.add_argument("--frames-retention-h", type=float, default=Retention.frames_h)
    ap.add_argument("--events-retention-days", type=float, default=Retention.events_days)
    ap.add_argument("--status-retention-h", type=float, default=Retention.status_h)
    ap.add_argument("--deadletter-retention-days", type=float, default=Retention.deadletter_days)
    ap.add_argument("--grow", action="store_true", help="add partitions to topics that have too few")
    ap.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for the broker")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        overrides = {"bus": {"bootstrap": args.bootstrap}} if args.bootstrap else {}
        settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        print(f"config error in {exc.source}: {'; '.join(exc.errors)}", file=sys.stderr)
        return 2
    if not settings.bus.bootstrap:
        print("bus.bootstrap is not set: there is no broker to create topics on", file=sys.stderr)
        return 2
    retention = Retention(
        args.frames_retention_h,
        args.events_retention_days,
        args.status_retention_h,
        args.deadletter_retention_days,
    )
    try:
        wait_for_broker(settings.bus.bootstrap, args.wait_s)
        admin = KafkaAdminClient(bootstrap_servers=settings.bus.bootstrap, client_id="sightline-init-topics")
        try:
            problems = ensure(admin, settings, retention, grow=args.grow)
        finally:
            admin.close()
    except (KafkaError, TimeoutError) as exc:
        print(f"topic setup failed: {exc}", file=sys.stderr)
        return 1
    for p in problems:
        log.warning("%s: the extra analyzers will sit idle; re-run with --grow (see docs/deploy.md)", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
