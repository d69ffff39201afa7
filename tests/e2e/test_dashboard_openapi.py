"""Schemathesis against the app's own OpenAPI document: no request may produce a 5xx.

Runs with a real broker so that writes succeed (without one, writes are a documented 503).
Bounded: a fixed number of examples per operation, derandomized, so it stays well under a minute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from bus.kafka import ensure_topics
from bus.topics import Topics
from configs import Settings
from dashboard.app import create_app

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


@pytest.fixture
def api_schema(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings]
) -> schemathesis.BaseSchema:
    s = make_settings(
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix},
        # Schemathesis' in-process client sends `Host: testserver`; the API serves only named hosts.
        api={"ask_per_minute": 1000, "allowed_hosts": ["testserver"]},
    )
    ensure_topics(kafka_bootstrap, Topics.from_config(s.bus).all(), s.bus.partitions)
    app = create_app(s)
    # The SSE streams never end by themselves; their handlers are covered by tests/unit/test_api_stream.py
    # and tests/broker/test_rules_api.py.
    return schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
        path=["/api/events/stream", "/api/alerts/stream"]
    )


def test_no_server_errors(api_schema: schemathesis.BaseSchema) -> None:
    failures: dict[str, str] = {}
    seen: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 18  # the whole API, not a slice of it

    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
            seen[(case.operation.label, response.status_code // 100)] += 1

        try:
            check()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # schemathesis raises exception groups; collect all, report all
            failures[op.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert sum(seen.values()) >= 200
    # Generated data got past validation too, not only into 4xx walls.
    for label in ("POST /api/cameras", "POST /api/queries", "GET /api/events", "GET /api/cameras"):
        assert seen[(label, 2)] >= 1, (label, seen)
    print(sorted(seen.items()))
