"""The broker goes away for 10 s mid-clip and comes back with its data; the stack carries on by itself.

The test runs a broker of its own: Tansu with its S3 storage engine on a local S3 server (moto's
server mode, a separate process that stays up), so a broker restart keeps every topic, record and
committed offset, as a production Kafka's disks would. Once both cameras' tracks are open in the
12 s red-figure clip, the broker is stopped, and started again on the same address 10 s later. No
Sightline process is touched: each must ride out the outage and reconnect on its own. The store
must end with exactly the calm run's events and summaries, and every process must still be running
at the end and stop cleanly.

"Recovered in" is the time from the broker's restart to the first stored event of a frame later
than any stored before it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.conftest import FaultRow
from faults.faultkit import (
    Outcome,
    S3Server,
    assert_no_crash,
    assert_same,
    calm_outcome,
    durable_broker,
    frontier,
    replay,
    row,
    wait_progress,
    wait_tracks_open,
)
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer

from stackkit import Stack

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(240)]
OUTAGE_S = 10.0


@pytest.fixture(scope="module")
def glm() -> Iterator[ScriptedServer]:
    with ScriptedServer({"mode": "colour"}) as server:
        yield server


def test_broker_stopped_for_10s_mid_clip(
    kafka_bootstrap: str,
    red_figure_clip: tuple[Path, Figure],
    glm: ScriptedServer,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    fault_report: list[FaultRow],
) -> None:
    clip = red_figure_clip[0]
    # Event ids do not depend on the broker, so the session broker's calm run is the reference.
    calm: Outcome = calm_outcome(kafka_bootstrap, clip, glm.base_url, tmp_path_factory.mktemp("calm"))
    restarts: list[float] = []

    with S3Server(tmp_path / "moto.log") as s3:
        broker = durable_broker(s3, tmp_path / "broker.log")
        broker.start()

        def disturb(stack: Stack) -> float | None:
            wait_tracks_open(stack)
            broker.stop()
            time.sleep(OUTAGE_S)
            past = frontier(stack)
            t0 = time.monotonic()
            broker.start()
            restarts.append(t0)
            return wait_progress(stack, t0, past)

        try:
            hit, recovered, stack = replay(
                broker.bootstrap,
                "f-broker",
                tmp_path / "run",
                clip,
                glm.base_url,
                disturb=disturb,
                expect=calm,
            )
        finally:
            broker.stop()

    assert restarts, "the broker was not restarted"
    assert_same(calm, hit, stack)
    assert_no_crash(hit, stack)
    fault_report.append(
        row("broker down 10 s (Tansu on S3)", calm, hit, recovered, "no process restarted; all reconnected")
    )
