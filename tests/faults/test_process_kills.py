"""SIGKILL each process kind mid-clip, restart it as a restart policy would, and compare the store.

Every scenario plays the 12 s red-figure clip in real time on two cameras through the real
processes (`sightline ingest|analyze|sink|serve`) and the session's Tansu broker. Once both
cameras' tracks are open (and none has ended), one process is killed with SIGKILL (no goodbye, no
last commit), and a second later started again. The run must complete on its own, and the store must
then hold exactly the calm run's events and summaries: same ids, same tracks, nothing twice, and
summary windows built from the same frames.

"Recovered in" is the time from the restart to the first stored event of a frame later than any
stored before it (new end-to-end progress); for the dashboard, to its /healthz answering again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.conftest import FaultRow
from faults.faultkit import (
    RESTART_DELAY_S,
    Outcome,
    api_up,
    assert_no_crash,
    assert_same,
    calm_outcome,
    kill_and_restart,
    replay,
    row,
    until,
    wait_tracks_open,
)
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer

from stackkit import Stack

Report = list[FaultRow]
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def glm() -> Iterator[ScriptedServer]:
    with ScriptedServer({"mode": "colour"}) as server:
        yield server


@pytest.fixture(scope="module")
def clip(red_figure_clip: tuple[Path, Figure]) -> Path:
    return red_figure_clip[0]


@pytest.fixture(scope="module")
def calm(
    kafka_bootstrap: str, clip: Path, glm: ScriptedServer, tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    return calm_outcome(kafka_bootstrap, clip, glm.base_url, tmp_path_factory.mktemp("calm"))


@pytest.fixture
def report(fault_report: list[FaultRow]) -> list[FaultRow]:
    return fault_report


def test_sigkill_ingest_mid_clip(
    kafka_bootstrap: str, clip: Path, glm: ScriptedServer, calm: Outcome, tmp_path: Path, report: Report
) -> None:
    """The restarted ingest (a new worker id) takes the cameras once the dead one's heartbeat is
    stale, replays the file from its start under the same session id, and the analyzer skips the
    frames its cursors already answered."""
    hit, recovered, stack = replay(
        kafka_bootstrap,
        "f-ingest",
        tmp_path,
        clip,
        glm.base_url,
        disturb=kill_and_restart("ingest"),
        expect=calm,
    )
    assert_same(calm, hit, stack)
    assert_no_crash(hit, stack, killed=("ingest-0",))
    assert hit.skips.get("analyzer:already_processed", 0) > 0, hit.skips  # the replayed frames
    report.append(row("SIGKILL ingest", calm, hit, recovered, "file replayed from its start"))


def test_sigkill_analyzer_mid_clip(
    kafka_bootstrap: str, clip: Path, glm: ScriptedServer, calm: Outcome, tmp_path: Path, report: Report
) -> None:
    """The only analyzer dies; its replacement restores the checkpoints and resumes from the commit.
    (Takeover by a live peer in the same group: tests/e2e/test_analyzer_failover.py.)"""
    hit, recovered, stack = replay(
        kafka_bootstrap,
        "f-analyze",
        tmp_path,
        clip,
        glm.base_url,
        disturb=kill_and_restart("analyze"),
        expect=calm,
    )
    assert_same(calm, hit, stack)
    assert_no_crash(hit, stack, killed=("analyze-0",))
    log = (tmp_path / "logs" / "analyze-1.log").read_text()
    assert re.search(r"restored [1-9]\d* camera checkpoints", log), log
    report.append(row("SIGKILL analyzer", calm, hit, recovered, "checkpoints restored by the new worker"))


def test_sigkill_sink_mid_clip(
    kafka_bootstrap: str, clip: Path, glm: ScriptedServer, calm: Outcome, tmp_path: Path, report: Report
) -> None:
    """Events produced while the sink is dead wait in the topic; the new sink writes them (upsert by id)."""
    hit, recovered, stack = replay(
        kafka_bootstrap,
        "f-sink",
        tmp_path,
        clip,
        glm.base_url,
        disturb=kill_and_restart("sink"),
        expect=calm,
    )
    assert_same(calm, hit, stack)
    assert_no_crash(hit, stack, killed=("sink-0",))
    report.append(row("SIGKILL sink", calm, hit, recovered, "backlog written from the last commit"))


def test_sigkill_dashboard_mid_clip(
    kafka_bootstrap: str, clip: Path, glm: ScriptedServer, calm: Outcome, tmp_path: Path, report: Report
) -> None:
    """The pipeline does not depend on the API process; the restarted API serves the same store."""

    def disturb(stack: Stack) -> float | None:
        wait_tracks_open(stack)
        stack.kill("serve")
        time.sleep(RESTART_DELAY_S)
        t0 = time.monotonic()
        stack.start("serve")
        ok = until(lambda: api_up(stack) and bool(stack.events(limit=1)), 30, every_s=0.05)
        return time.monotonic() - t0 if ok else None

    hit, recovered, stack = replay(
        kafka_bootstrap, "f-serve", tmp_path, clip, glm.base_url, disturb=disturb, expect=calm
    )
    assert recovered is not None, stack.logs()
    assert_same(calm, hit, stack)
    assert_no_crash(hit, stack, killed=("serve-0",))
    report.append(row("SIGKILL dashboard", calm, hit, recovered, "recovery = /healthz and events answer"))
