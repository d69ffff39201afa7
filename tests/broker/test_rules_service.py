"""`sightline rules` and `sightline sink` as real processes on Tansu: alerts reach the store with the
ids the evaluator gives offline, and a SIGKILL of the rules process mid-run loses none and adds none."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from bus.contracts import Alert, ObjectEvent, QuerySpec
from bus.kafka import Producer, ensure_topics, make_consumer
from bus.rulespec import load_ruleset
from configs import load_settings
from dashboard.app import create_app
from rules.evaluator import Evaluator
from sightline.testing.rules_kit import RULES_YAML, scene
from sinks.alerts import AlertFilter, import_ruleset, list_alerts
from sinks.store import Store

from stackkit import Stack, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _rules_file(tmp_path: Path) -> Path:
    data = yaml.safe_load(RULES_YAML)
    # The same geometry on a second camera, so two cameras (and likely two partitions) are in play.
    data["zones"].append({**data["zones"][0], "id": "yard-gate", "camera": "yard"})
    data["lines"].append({**data["lines"][0], "id": "yard-fence", "camera": "yard"})
    data["rules"].append({"id": "yard-in", "query": "red", "when": {"cross": {"line": "yard-fence"}}})
    data["rules"].append(
        {"id": "yard-dwell", "query": "red", "when": {"dwell": {"zone": "yard-gate", "seconds": 10}}}
    )
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _expected(path: Path, events: list[ObjectEvent]) -> set[str]:
    rs = load_ruleset(yaml.safe_load(path.read_text()))
    ev = Evaluator(rs.zones, rs.lines, rs.rules)
    return {a.alert_id for e in events for a in ev.feed(e)}


def _stored(store: Store) -> list[dict[str, object]]:
    return list_alerts(store.engine, AlertFilter(), limit=10_000)[0]


def test_sigkill_of_the_rules_process_loses_no_alert_and_adds_none_and_dry_run_agrees(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    rules_file = _rules_file(tmp_path)
    events = sorted(
        scene("door", 14) + scene("yard", 12, seed=1), key=lambda e: (e.pts_s, e.camera_id, e.track_id)
    )
    expected = _expected(rules_file, events)
    assert len(expected) >= 30
    stack = Stack(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "data",
        SIGHTLINE_RULES__FILE=str(rules_file),
        SIGHTLINE_RULES__GROUP_ID=f"{topic_prefix}-rules",
        SIGHTLINE_STORE__RETENTION_DAYS="36500",
    )
    ensure_topics(kafka_bootstrap, stack.topics.all(), 3)
    producer = Producer(kafka_bootstrap)
    store: Store | None = None
    done = threading.Event()

    def feed() -> None:  # a live-ish stream: the kill lands while events are still arriving
        for i, e in enumerate(events):
            producer.send(stack.topics.detections, e.camera_id, e)
            if i % 10 == 9:
                producer.flush()
                time.sleep(0.15)
        producer.flush()
        done.set()

    try:
        stack.start("sink")
        stack.start("rules")
        wait_for(lambda: "assigned partitions" in _log(stack, 0), 30, "rules joined its group", stack)
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        store = Store(f"sqlite:///{tmp_path / 'data' / 'sightline.db'}")
        wait_for(lambda: len(_stored(store)) >= len(expected) // 4, 60, "the first alerts", stack)
        assert not done.is_set(), "the feed ended before the kill: slow it down"
        stack.kill("rules")
        stack.start("rules")
        feeder.join(60)
        wait_for(lambda: len(_stored(store)) >= len(expected), 90, "all expected alerts", stack)
        time.sleep(2.0)  # anything extra would arrive now
        stored = _stored(store)
        ids = [str(a["alert_id"]) for a in stored]
        assert set(ids) == expected
        assert len(ids) == len(set(ids))
        assert re.search(r"restored [1-9]\d* camera checkpoints", _log(stack, 1)), _log(stack, 1)
        on_topic = _alerts_on_topic(kafka_bootstrap, stack.topics.alerts, len(expected))
        assert set(on_topic) == expected  # no alert the evaluator would not raise, even if one was sent twice
        # The dry run over what the sink stored gives the live run's alerts, id for id.
        assert _dry_run_ids(rules_file, tmp_path / "data", topic_prefix) == set(ids)
    finally:
        producer.close()
        if store is not None:
            store.close()
        stack.stop()


def _dry_run_ids(rules_file: Path, data_dir: Path, prefix: str) -> set[str]:
    settings = load_settings(None, data_dir=str(data_dir), bus={"topic_prefix": prefix})
    rs = load_ruleset(yaml.safe_load(rules_file.read_text()))
    with TestClient(create_app(settings)) as client:
        store = client.app.state.sightline.store  # type: ignore[attr-defined]
        import_ruleset(store.engine, rs.model_copy(update={"rules": ()}))  # geometry only: rules are tried
        store.put_query(QuerySpec(id="red", text="people in red"))
        ids: set[str] = set()
        for rule in rs.rules:
            body = {"rule": rule.model_dump(mode="json", by_alias=True), "limit": 1000}
            r = client.post("/api/rules/dry-run", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["count"] == len(r.json()["alerts"])
            ids |= {a["alert_id"] for a in r.json()["alerts"]}
    return ids


def _log(stack: Stack, index: int) -> str:
    path = stack.data_dir / "logs" / f"rules-{index}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _alerts_on_topic(bootstrap: str, topic: str, at_least: int) -> list[str]:
    consumer = make_consumer(bootstrap, [topic], None)
    ids: list[str] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                ids += [Alert.model_validate_json(r.value).alert_id for r in records]
            if len(ids) >= at_least and not consumer.poll(timeout_ms=500):
                break
    finally:
        consumer.close()
    return ids


def test_poison_on_detections_is_dead_lettered_and_the_rules_carry_on(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    from bus.contracts import DeadLetter
    from configs import Settings
    from rules.service import run as run_rules

    rules_file = _rules_file(tmp_path)
    settings: Settings = load_settings(
        None,
        data_dir=str(tmp_path),
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix},
        rules={"file": str(rules_file), "group_id": f"{topic_prefix}-rules"},
    )
    topics = Stack(kafka_bootstrap, topic_prefix, tmp_path / "d").topics
    ensure_topics(kafka_bootstrap, topics.all(), 3)
    events = scene("door", 3)
    expected = _expected(rules_file, events)
    producer = Producer(kafka_bootstrap)
    producer.send_raw(topics.detections, b"door", b'{"schema": "sightline.object_event/1", "phase": "?"}')
    for e in events:
        producer.send(topics.detections, e.camera_id, e)
    producer.flush()
    producer.close()
    stop = threading.Event()
    worker = threading.Thread(target=run_rules, args=(settings, stop), daemon=True)
    worker.start()
    try:
        got = _alerts_on_topic(kafka_bootstrap, topics.alerts, len(expected))
        assert set(got) == expected
        consumer = make_consumer(kafka_bootstrap, [topics.deadletter], None)
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + 10
        while not letters and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                letters += [DeadLetter.model_validate_json(r.value) for r in records]
        consumer.close()
        assert [d.topic for d in letters] == [topics.detections] and "object_event" in letters[0].reason
    finally:
        stop.set()
        worker.join(15)
