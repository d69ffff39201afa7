"""Every process kind's /metrics during an end-to-end run: what Prometheus would scrape.

One stack (ingest, analyzer, sink, API on the test broker, metrics on) plays a recorded clip;
each endpoint is scraped after events reached the store, checked by `promtool check metrics`
(the Prometheus project's own linter) and read for the series the dashboard relies on.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import need
from prometheus_client.parser import text_string_to_metric_families

from bus.broker import free_port
from bus.contracts import CameraSpec, QuerySpec

from stackkit import Stack, wait_for

pytestmark = pytest.mark.e2e
KINDS = ("ingest", "analyzer", "sink", "rules")


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


@pytest.fixture(scope="module")
def scraped(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, vtest_10s: Path
) -> Iterator[dict[str, str]]:
    """kind -> /metrics text, scraped while the stack is still running after a clip's events arrived
    (and "prefix" -> the run's topic prefix)."""
    ports = {kind: free_port() for kind in KINDS}
    env = {"SIGHTLINE_METRICS__ENABLED": "true"} | {
        f"SIGHTLINE_METRICS__{kind.upper()}_PORT": str(port) for kind, port in ports.items()
    }
    prefix = f"t{uuid.uuid4().hex[:10]}"
    stack = Stack(kafka_bootstrap, prefix, tmp_path_factory.mktemp("metrics") / "data", **env)
    stack.start_all(("ingest", "analyze", "rules", "sink", "serve"))
    try:
        stack.register(
            CameraSpec(id="lobby", url=str(vtest_10s), realtime=False), QuerySpec(id="people", text="people")
        )
        wait_for(lambda: any(e["phase"] == "end" for e in stack.events()), 180, "end events", stack)
        time.sleep(2.5)  # a status interval, so the ingest gauges and the sink's counters are current

        def scrape(kind: str) -> str:
            return httpx.get(f"http://127.0.0.1:{ports[kind]}/metrics", timeout=5).text

        def rules_caught_up() -> bool:  # the rules process reads the same detections on its own
            made = sample(scrape("analyzer"), "sightline_analyzer_events_total")
            return made > 0 and sample(scrape("rules"), "sightline_rules_events_total") == made

        wait_for(rules_caught_up, 30, "the rules process to evaluate every event", stack)
        texts = {kind: scrape(kind) for kind in KINDS}
        texts["api"] = httpx.get(f"{stack.api}/metrics", timeout=5).text
        texts["prefix"] = prefix
        yield texts
    finally:
        stack.stop()


@pytest.mark.parametrize("kind", [*KINDS, "api"])
def test_promtool_accepts_every_process_kinds_metrics(scraped: dict[str, str], kind: str) -> None:
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool is not installed (Debian package `prometheus`)")
    assert promtool is not None
    done = subprocess.run(
        [promtool, "check", "metrics"], input=scraped[kind], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"promtool on {kind}:\n{done.stdout}{done.stderr}"
    assert scraped[kind].count("\n# TYPE ") >= 3  # not an empty page that trivially passes


def test_the_run_shows_in_each_processs_own_metrics(scraped: dict[str, str]) -> None:
    ingest, analyzer, sink = scraped["ingest"], scraped["analyzer"], scraped["sink"]
    published = sample(ingest, "sightline_ingest_frames_published_total", camera_id="lobby")
    assert published >= 15  # 10 s at 2 fps
    assert sample(ingest, "sightline_ingest_published_bytes_total", camera_id="lobby") > published * 1000
    assert sample(ingest, "sightline_ingest_camera_state", camera_id="lobby", state="stopped") == 1.0

    calls = sample(analyzer, "sightline_analyzer_engine_calls_total", camera_id="lobby", query_id="people")
    assert calls >= 15
    hist = sample(analyzer, "sightline_analyzer_engine_call_seconds_count", camera_id="lobby", kind="ground")
    assert hist == calls
    assert sample(analyzer, "sightline_engine_calls_total", engine="baseline") == calls
    starts = sample(analyzer, "sightline_analyzer_events_total", camera_id="lobby", phase="start")
    assert starts >= 1
    assert sample(analyzer, "sightline_consumer_lag_messages", topic=f"{scraped['prefix']}.frames") == 0

    assert sample(sink, "sightline_sink_events_stored_total", camera_id="lobby", phase="start") == starts
    timed = sample(sink, "sightline_sink_frame_to_stored_seconds_count", kind="event")
    assert timed == sample(sink, "sightline_sink_events_stored_total", camera_id="lobby") - sample(
        sink, "sightline_sink_events_stored_total", camera_id="lobby", phase="end"
    )
    assert "sightline_consumer_lag_messages{" in sink
    assert sample(scraped["rules"], "sightline_rules_events_total") == sample(
        analyzer, "sightline_analyzer_events_total"
    )
    assert (
        sample(scraped["rules"], "sightline_consumer_lag_messages", topic=f"{scraped['prefix']}.detections")
        == 0
    )
    assert sample(sink, "process_resident_memory_bytes") > 0
    assert "sightline_store_rows" in scraped["api"]


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "sightline.json"
METRIC = re.compile(r"\b(?:sightline|process|python)_[a-z0-9_]+\b")


def exposed_names(text: str) -> set[str]:
    """Names a PromQL query can use: each declared family, with a histogram's _bucket/_sum/_count."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_every_metric_the_grafana_dashboard_queries_is_exposed_by_a_process(scraped: dict[str, str]) -> None:
    exposed = set().union(*(exposed_names(scraped[k]) for k in (*KINDS, "api")))
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names, f"no metric in {expr!r}"
        used |= names
    assert used - exposed == set(), f"queried but exposed by no process: {sorted(used - exposed)}"
    # The panels the issue asks for are there.
    for needed in (
        "sightline_ingest_camera_state",
        "sightline_ingest_fps_in",
        "sightline_ingest_drops_total",
        "sightline_analyzer_engine_call_seconds_bucket",
        "sightline_analyzer_engine_tokens_total",
        "sightline_analyzer_engine_cost_total",
        "sightline_sink_events_stored_total",
        "sightline_rules_alerts_total",
        "sightline_consumer_lag_messages",
    ):
        assert needed in used, needed
