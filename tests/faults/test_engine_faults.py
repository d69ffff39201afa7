"""The GLM engine misbehaves for a while during a replay through the real broker and processes.

Each scenario plays the red-figure clip on two cameras (faultkit.replay) while the scripted GLM
server, FAULT_AT_S after the first engine call, answers every request badly for FAULT_FOR_S
seconds, then truthfully again. The undisturbed run of the same clip (faultkit.calm_outcome) is
the expectation.

- 500s, hangs past the client timeout, and malformed bodies are *failures*: the analyzer must not
  skip the frame. After the engine's own retries and circuit breaker it backs off, commits up to
  the failed frame and retries it, so the store ends with exactly the calm run's events and
  summaries, id for id, none twice, and no frame skipped.
- Garbage is an *answer*: a 200 whose text has box markup but no readable box. Asking a
  deterministic model again would give the same garbage, so the frame is not retried: the analyzer
  skips it, counted as `unreadable` (it is not taken as "nobody there", but it is no answer either).
  A run of garbage longer than `max_missing_s` leaves the figure's track without answers, so it
  ends early, and a new track starts once answers are truthful again. Asserted: everything before
  the fault is the calm run's (the track's start), the track ends early, a new track starts after
  the fault and ends, nothing is duplicated, every summary window is still produced (a summary
  answered with garbage keeps its id, its text is the garbage), and the only skips are the
  counted unreadable answers.

"Recovered in" is measured from the end of the fault (the server healthy again) to the first
engine call the analyzer makes after it: the engine's breaker and the worker's backoff, as run.
The engine is configured for a test-sized outage (client timeout 3 s, 1 retry, breaker reset 2 s);
with the defaults (60 s, 3 retries, 30 s) the same outage recovers after about the breaker reset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faults.conftest import FaultRow
from faults.faultkit import CAMERAS, Outcome, assert_same, calm_outcome, replay, row
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer

from stackkit import Stack

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(240)]

COLOUR: dict[str, Any] = {"mode": "colour"}
FAULT_AT_S = 5.0  # after the first engine call: the figure (3-9 s) has a track by then
FAULT_FOR_S = 2.5  # longer than max_missing_s (2 s): an answer stream lost for good ends the track
HANG_FOR_S = 7.0  # hangs: long enough for the engine's own retry (2 x 3 s timeout) to give up too
ENGINE = {
    "SIGHTLINE_ENGINE__TIMEOUT_S": "3",
    "SIGHTLINE_ENGINE__MAX_RETRIES": "1",
    "SIGHTLINE_ENGINE__BACKOFF_S": "0.2",
    "SIGHTLINE_ENGINE__BREAKER_RESET_S": "2",
}
NOT_LOST = {"analyzer:already_processed"}  # a redelivered frame already answered: skipped, not lost


@pytest.fixture(scope="module")
def glm() -> Iterator[ScriptedServer]:
    with ScriptedServer(COLOUR) as server:
        yield server


@pytest.fixture(scope="module")
def calm(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    red_figure_clip: tuple[Path, Figure],
    glm: ScriptedServer,
) -> Outcome:
    return calm_outcome(kafka_bootstrap, red_figure_clip[0], glm.base_url, tmp_path_factory.mktemp("calm"))


class EngineFault:
    """The disturbance: wait for the engine's first call, then FAULT_FOR_S of `step` on every request."""

    def __init__(self, glm: ScriptedServer, step: dict[str, Any], seconds: float) -> None:
        self.glm, self.step, self.seconds = glm, step, seconds
        self.faulted = 0  # requests answered badly
        self.n0 = len(glm.requests)

    def __call__(self, stack: Stack) -> float:
        glm = self.glm
        deadline = time.monotonic() + 60
        while len(glm.requests) == self.n0:
            assert time.monotonic() < deadline, f"no engine call within 60 s\n{stack.logs()}"
            time.sleep(0.05)
        time.sleep(FAULT_AT_S)
        start = len(glm.requests)
        glm.set_scenario({**COLOUR, "hang_s": 30.0, "steps": [self.step] * 5000})
        time.sleep(self.seconds)
        glm.set_scenario(COLOUR)
        ended = time.monotonic()
        n_end = len(glm.requests)
        self.faulted = n_end - start
        deadline = ended + 90
        while len(glm.requests) == n_end:
            assert time.monotonic() < deadline, f"no engine call 90 s after the fault\n{stack.logs()}"
            time.sleep(0.02)
        return time.monotonic() - ended


def analyzer_retries(stack: Stack) -> int:
    """Frames the analyzer worker had to retry (the engine gave up on them after its own retries)."""
    logs = sorted((stack.data_dir / "logs").glob("analyze-*.log"))
    return sum(f.read_text(errors="replace").count("engine unavailable, will retry") for f in logs)


def lost(hit: Outcome) -> dict[str, int]:
    return {k: v for k, v in hit.skips.items() if k not in NOT_LOST and v}


@pytest.mark.parametrize(
    ("scenario", "step", "seconds"),
    [
        ("500s", {"status": 500}, FAULT_FOR_S),
        ("timeouts", {"fault": "hang"}, HANG_FOR_S),
        ("malformed JSON", {"fault": "malformed"}, FAULT_FOR_S),
    ],
)
def test_engine_failing_for_a_while_loses_and_duplicates_nothing(
    scenario: str,
    step: dict[str, Any],
    seconds: float,
    kafka_bootstrap: str,
    tmp_path: Path,
    red_figure_clip: tuple[Path, Figure],
    glm: ScriptedServer,
    calm: Outcome,
    fault_report: list[FaultRow],
) -> None:
    fault = EngineFault(glm, step, seconds)
    hit, recovered, stack = replay(
        kafka_bootstrap,
        f"e{scenario[:3]}{int(time.time())}",
        tmp_path,
        red_figure_clip[0],
        glm.base_url,
        disturb=fault,
        expect=calm,
        kill_at_s=0.0,
        timeout_s=90,
        **ENGINE,
    )
    assert fault.faulted > 0, "the fault never met a request"
    retried = analyzer_retries(stack)
    assert retried > 0, "the engine's own retries hid the fault: the analyzer's retry was not exercised"
    assert_same(calm, hit, stack)
    assert not lost(hit), f"frames skipped during a temporary outage: {lost(hit)}"
    fault_report.append(
        row(
            f"engine {scenario} for {seconds:.1f} s",
            calm,
            hit,
            recovered,
            note=f"{fault.faulted} requests failed; the analyzer retried {retried} times",
        )
    )


def test_engine_answering_garbage_for_a_while_ends_the_track_early_and_recovers(
    kafka_bootstrap: str,
    tmp_path: Path,
    red_figure_clip: tuple[Path, Figure],
    glm: ScriptedServer,
    calm: Outcome,
    fault_report: list[FaultRow],
) -> None:
    fault = EngineFault(glm, {"fault": "garbage"}, FAULT_FOR_S)
    hit, recovered, stack = replay(
        kafka_bootstrap,
        f"egarbage{int(time.time())}",
        tmp_path,
        red_figure_clip[0],
        glm.base_url,
        disturb=fault,
        kill_at_s=0.0,
        timeout_s=90,
        **ENGINE,
    )
    logs = stack.logs()
    assert fault.faulted > 0, "the fault never met a request"
    calm_by_cam = {cam: [e for e in calm.events.values() if e["camera_id"] == cam] for cam in CAMERAS}
    for cam in CAMERAS:
        mine = [e for e in hit.events.values() if e["camera_id"] == cam]
        (calm_start,) = [e for e in calm_by_cam[cam] if e["phase"] == "start"]
        (calm_end,) = [e for e in calm_by_cam[cam] if e["phase"] == "end"]
        starts = sorted((e for e in mine if e["phase"] == "start"), key=lambda e: e["frame_id"])
        ends = sorted((e for e in mine if e["phase"] == "end"), key=lambda e: e["frame_id"])
        # Before the fault, the calm run's track, id for id.
        assert calm_start["event_id"] in hit.events, (cam, starts, logs)
        # Garbage answers look like "nobody there": the first track ends before the calm one did.
        first_end = next(e for e in ends if e["track_id"] == calm_start["track_id"])
        assert first_end["pts_s"] < calm_end["pts_s"], (cam, first_end, calm_end)
        # After the fault, the figure is found again: a second track starts and ends.
        assert len(starts) == 2 and len(ends) == 2, (cam, starts, ends, logs)
        assert starts[1]["frame_id"] > first_end["frame_id"], (cam, starts, first_end)
    assert hit.duplicated == 0
    assert set(hit.summaries) == set(calm.summaries), "every summary window is still produced"
    skipped = lost(hit)
    assert 0 < skipped.pop("analyzer:unreadable", 0) <= fault.faulted, lost(hit)
    assert not skipped, f"frames skipped for another reason: {skipped}"
    calm_kept = len(calm.ids & hit.ids)
    fault_report.append(
        row(
            f"engine garbage for {FAULT_FOR_S:.1f} s",
            calm,
            hit,
            recovered,
            note=(
                f"{fault.faulted} garbage answers (grounding ones skipped as unreadable); "
                f"{calm_kept} calm events kept, each track ended early and restarted"
            ),
        )
    )
