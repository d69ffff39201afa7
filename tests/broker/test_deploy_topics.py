"""deploy/init_topics.py (the compose `topics` job) against a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from bus.topics import Topics
from configs import Settings, load_settings

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_init_topics", ROOT / "deploy/init_topics.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


init_topics = _script()


def _settings(bootstrap: str, prefix: str, partitions: int) -> Settings:
    return load_settings(None, bus={"bootstrap": bootstrap, "topic_prefix": prefix, "partitions": partitions})


def _partitions(admin: Any, names: list[str]) -> dict[str, int]:
    return {d["name"]: len(d["partitions"]) for d in admin.describe_topics(names)}


def test_creates_every_topic_with_the_configured_partitions_and_is_idempotent(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = _settings(kafka_bootstrap, topic_prefix, 5)
    names = Topics.from_config(settings.bus).all()
    args = ["--config", "default", "--bootstrap", kafka_bootstrap, "--wait-s", "10"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIGHTLINE_BUS__TOPIC_PREFIX", topic_prefix)
        mp.setenv("SIGHTLINE_BUS__PARTITIONS", "5")
        assert init_topics.main(args) == 0
        assert init_topics.main(args) == 0  # a second run (every `docker compose up`) changes nothing
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert set(names) <= set(admin.list_topics())
        assert _partitions(admin, names) == dict.fromkeys(names, 5)
        slots = settings.bus.topic("ingest_slots")  # the ingest group's own partition count
        assert _partitions(admin, [slots]) == {slots: settings.ingest.slots}
    finally:
        admin.close()


def test_reports_topics_with_fewer_partitions_than_analyzers_need(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = _settings(kafka_bootstrap, topic_prefix, 4)
    topics = Topics.from_config(settings.bus)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topics.frames, 2, 1)])  # made earlier with a smaller bus.partitions
        problems = init_topics.ensure(admin, settings, init_topics.Retention())
        assert problems == [f"{topics.frames} has 2 partitions, bus.partitions is 4"]
        assert _partitions(admin, [topics.detections])[topics.detections] == 4
    finally:
        admin.close()


def test_unreachable_broker_fails_the_job_instead_of_hanging(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("bus: {bootstrap: '127.0.0.1:9'}\n")
    assert init_topics.main(["--config", str(cfg), "--wait-s", "0.5"]) == 1


def test_topic_policy_follows_the_config() -> None:
    settings = load_settings(None, bus={"topic_prefix": "p", "max_frame_bytes": 2_000_000})
    configs = init_topics.topic_configs(settings, init_topics.Retention(frames_h=2, events_days=3))
    assert configs["p.control"]["cleanup.policy"] == "compact"  # replayed from the start at boot
    assert configs["p.frames"]["retention.ms"] == str(2 * 3_600_000)
    assert int(configs["p.frames"]["max.message.bytes"]) > 2_000_000
    assert int(configs["p.frames"]["segment.ms"]) < 2 * 3_600_000  # else nothing is deleted on time
    assert (
        configs["p.detections"]["retention.ms"]
        == configs["p.summaries"]["retention.ms"]
        == str(3 * 86_400_000)
    )
    assert configs["p.analyzer_state"]["cleanup.policy"] == "compact,delete"
    assert set(configs) == set(Topics.from_config(settings.bus).all())
