"""Shared pieces of the fault tier: a replay through the real processes, its outcome, and the comparison.

A scenario plays the same clip on the same cameras as an undisturbed ("calm") run, disturbs the
stack once while the clip plays, lets it recover on its own and compares what the store ends with:

    calm = calm_outcome(kafka_bootstrap, clip, glm.base_url, tmp_path_factory.mktemp("calm"))
    hit, recovered_s, stack = replay(kafka_bootstrap, "t-sink", tmp_path, clip, glm.base_url, disturb=...)
    assert_same(calm, hit, stack)
    fault_report.append(row("sink SIGKILL", calm, hit, recovered_s))

`disturb(stack)` runs `kill_at_s` seconds into the clip (a process kill also waits for open tracks,
`wait_tracks_open`), does the damage (and the restart a restart policy would do) and returns the
seconds it measured to recovery, e.g. with `wait_progress`. `kill_and_restart(verb)` is such a
`disturb`; `assert_same` and `assert_no_crash` are the checks; `row` makes the report's FaultRow.
`S3Server` + `durable_broker` give a Tansu broker whose data outlives the broker process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from bus.broker import EmbeddedBroker, free_port
from bus.contracts import CameraSpec, QuerySpec
from faults.conftest import FaultRow

from stackkit import Stack

CAMERAS = ("cam-a", "cam-b")
GROUNDING = QuerySpec(id="red", text="people in red")
SUMMARY = QuerySpec(id="sum", text="Describe", kind="summary", window_s=4.0)
KILL_AT_S = 3.0  # into the 12 s red-figure clip (the figure walks from 3 s to 9 s); see `wait_tracks_open`
RESTART_DELAY_S = 1.0  # what a restart policy waits before starting a dead process again
SETTLE_S = 2.0  # after the last expected output: anything still in flight lands (extras would show)

Disturb = Callable[[Stack], float | None]


@dataclass
class Outcome:
    """What the store holds after a run, read through the API."""

    events: dict[str, dict[str, Any]]  # event_id -> event
    rows: int  # event rows the API listed (a repeated id would count twice)
    summaries: dict[str, dict[str, Any]]  # summary_id -> summary
    skips: dict[str, int] = field(default_factory=dict)  # counted skips/drops, "<component>:<reason>"
    exits: dict[str, int | None] = field(default_factory=dict)  # "<verb>-<n>" -> exit code at the end

    @property
    def ids(self) -> set[str]:
        return set(self.events)

    @property
    def tracks(self) -> set[tuple[str, str, str]]:
        return {(e["camera_id"], e["query_id"], e["track_id"]) for e in self.events.values()}

    @property
    def duplicated(self) -> int:
        """Rows listed twice, plus events whose content (camera, query, phase, frame, box) repeats
        under another id: the trace of an object tracked twice or a frame answered twice."""
        content = Counter(
            (e["camera_id"], e["query_id"], e["phase"], e["frame_id"], tuple(e["bbox"]))
            for e in self.events.values()
        )
        return (self.rows - len(self.events)) + sum(n - 1 for n in content.values())


# ---- a stack playing the clip ------------------------------------------------------------------


def engine_env(base_url: str) -> dict[str, str]:
    return {
        "SIGHTLINE_ENGINE__TYPE": "openai",
        "SIGHTLINE_ENGINE__BASE_URL": base_url,
        "SIGHTLINE_ENGINE__API_KEY": "test",
        "SIGHTLINE_INGEST__SAMPLE_FPS": "2",
    }


def start_stack(
    bootstrap: str, prefix: str, data: Path, base_url: str, *, analyzers: int = 1, **env: str
) -> Stack:
    """sink, serve and `analyzers` analyzers, settled into their groups; ingest is started by `play`."""
    stack = Stack(bootstrap, prefix, data, **{**engine_env(base_url), **env})
    stack.start_all(("sink", "serve", "analyze"))
    for _ in range(analyzers - 1):
        stack.start("analyze")
    time.sleep(3.0)  # let the groups settle before frames flow
    return stack


def play(stack: Stack, clip: Path, cameras: tuple[str, ...] = CAMERAS) -> None:
    stack.start("ingest")
    for cam in cameras:
        stack.register(CameraSpec(id=cam, url=str(clip), realtime=True), GROUNDING, SUMMARY)


def summaries(stack: Stack) -> list[dict[str, Any]]:
    body = httpx.get(f"{stack.api}/api/summaries", params={"limit": 500}, timeout=10).json()
    return list(body["items"] if isinstance(body, dict) else body)


def api_up(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.api}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def until(cond: Callable[[], bool], timeout_s: float, every_s: float = 0.25) -> bool:
    """Poll `cond` until it holds (True) or the time is up (False); exceptions count as not yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if cond():
                return True
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


def frontier(stack: Stack) -> dict[str, int]:
    """Highest frame id with a stored event, per camera."""
    out: dict[str, int] = {}
    for e in stack.events():
        out[e["camera_id"]] = max(out.get(e["camera_id"], -1), int(e["frame_id"]))
    return out


def wait_progress(stack: Stack, t0: float, past: dict[str, int], timeout_s: float = 90.0) -> float | None:
    """Seconds from `t0` until an event of a later frame than `past` (per camera) is stored: the
    pipeline is making new progress end to end. None if that did not happen in time."""

    def moved() -> bool:
        return any(int(e["frame_id"]) > past.get(e["camera_id"], -1) for e in stack.events())

    return time.monotonic() - t0 if until(moved, timeout_s) else None


def wait_tracks_open(stack: Stack, cameras: tuple[str, ...] = CAMERAS, timeout_s: float = 60.0) -> None:
    """Block until every camera has a stored `start` event and none an `end`: a fault injected now hits
    open tracks mid-clip, whatever the machine's speed (the test would prove little otherwise)."""

    def open_everywhere() -> bool:
        phases = {(e["camera_id"], e["phase"]) for e in stack.events()}
        assert not any(p == "end" for _, p in phases), f"tracks ended before the fault: {phases}"
        return all((c, "start") in phases for c in cameras)

    assert until(open_everywhere, timeout_s), f"no open track on every camera\n{stack.logs()}"


def kill_and_restart(verb: str, delay_s: float = RESTART_DELAY_S) -> Disturb:
    """Once tracks are open, SIGKILL the newest process of a kind and start it again `delay_s` later
    (what a restart policy does); recovery is measured by `wait_progress`."""

    def disturb(stack: Stack) -> float | None:
        wait_tracks_open(stack)
        stack.kill(verb)
        time.sleep(delay_s)
        past = frontier(stack)
        t0 = time.monotonic()
        stack.start(verb)
        return wait_progress(stack, t0, past)

    return disturb


def crashed(stack: Stack) -> dict[str, int]:
    """Processes that exited by themselves ("<verb>-<n>" -> rc); a SIGKILL by the test is not a crash."""
    return {
        f"{verb}-{i}": rc
        for verb, procs in stack.procs.items()
        for i, p in enumerate(procs)
        if (rc := p.poll()) is not None and rc != -signal.SIGKILL
    }


def terminate(stack: Stack, verb: str) -> None:
    """SIGTERM every live process of a kind and wait for it (a clean stop, unlike Stack.kill)."""
    procs = [p for p in stack.procs.get(verb, []) if p.poll() is None]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def collect(stack: Stack) -> Outcome:
    """Stop the analyzers cleanly (their last status carries final counters), then read the store."""
    live = [p.pid for p in stack.procs.get("analyze", []) if p.poll() is None]
    terminate(stack, "analyze")
    node = os.uname().nodename

    def final_status_stored() -> bool:
        st = {s["id"]: s for s in httpx.get(f"{stack.api}/api/status", timeout=5).json()}
        return all(st.get(f"analyzer-{node}-{pid}", {}).get("state") == "stopped" for pid in live)

    until(final_status_stored, 15)
    skips: Counter[str] = Counter()
    for s in httpx.get(f"{stack.api}/api/status", timeout=5).json():
        for reason, n in (s.get("drops") or {}).items():
            if n:
                skips[f"{s['component']}:{reason}"] += int(n)
    listed = stack.events()
    return Outcome(
        events={e["event_id"]: e for e in listed},
        rows=len(listed),
        summaries={s["summary_id"]: s for s in summaries(stack)},
        skips=dict(skips),
    )


def replay(
    bootstrap: str,
    prefix: str,
    data: Path,
    clip: Path,
    base_url: str,
    *,
    disturb: Disturb | None = None,
    expect: Outcome | None = None,
    analyzers: int = 1,
    kill_at_s: float = KILL_AT_S,
    timeout_s: float = 120.0,
    **env: str,
) -> tuple[Outcome, float | None, Stack]:
    """Play the clip; `disturb` it `kill_at_s` in; wait until the outputs are complete.

    Complete means: every event and summary of `expect` is stored (a disturbed run), or every camera
    has an `end` event and three summaries (the calm run). A run that never completes is compared
    anyway after `timeout_s`, so the assertion shows what is missing. Returns the outcome, the
    recovery time `disturb` measured, and the (stopped) stack, whose logs stay readable.
    """
    stack = start_stack(bootstrap, prefix, data, base_url, analyzers=analyzers, **env)
    recovered: float | None = None
    try:
        play(stack, clip)
        if disturb is not None:
            time.sleep(kill_at_s)
            recovered = disturb(stack)

        def complete() -> bool:
            assert not (dead := crashed(stack)), f"processes died on their own: {dead}\n{stack.logs()}"
            if expect is not None:
                ids = {e["event_id"] for e in stack.events()}
                sums = {s["summary_id"] for s in summaries(stack)}
                return expect.ids <= ids and set(expect.summaries) <= sums
            ends = {e["camera_id"] for e in stack.events(phase="end")}
            return ends == set(CAMERAS) and len(summaries(stack)) >= 3 * len(CAMERAS)

        until(complete, timeout_s)
        time.sleep(SETTLE_S)
        if not api_up(stack):  # a scenario that left the API down still has its store read
            stack.start("serve")
            until(lambda: api_up(stack), 30)
        outcome = collect(stack)
    finally:
        exits = stack.stop()
    outcome.exits = exits
    return outcome, recovered, stack


_calm: dict[tuple[str, str], Outcome] = {}


def calm_outcome(bootstrap: str, clip: Path, base_url: str, data: Path) -> Outcome:
    """The undisturbed run of `clip`, computed once per (broker, clip) in a test session."""
    key = (bootstrap, str(clip))
    if key not in _calm:
        outcome, _, stack = replay(bootstrap, f"calm{os.getpid()}", data, clip, base_url)
        assert len(outcome.events) >= 3 * len(CAMERAS), ("calm run too thin", outcome.events, stack.logs())
        assert len(outcome.tracks) == len(CAMERAS), ("one object per camera", outcome.tracks)
        _calm[key] = outcome
    return _calm[key]


# ---- the comparison ----------------------------------------------------------------------------


def assert_same(calm: Outcome, hit: Outcome, stack: Stack | None = None) -> None:
    """Nothing lost, nothing extra, nothing twice: the disturbed store equals the calm one."""
    logs = stack.logs() if stack else ""
    missing, extra = calm.ids - hit.ids, hit.ids - calm.ids
    assert not missing and not extra, _diff("events", calm, hit, missing, extra, logs)
    assert hit.tracks == calm.tracks, (sorted(hit.tracks), sorted(calm.tracks))
    assert hit.duplicated == 0, hit.duplicated
    assert set(hit.summaries) == set(calm.summaries), (
        sorted(set(hit.summaries) ^ set(calm.summaries)),
        logs,
    )
    frames = {k: s["frames"] for k, s in hit.summaries.items()}
    calm_frames = {k: s["frames"] for k, s in calm.summaries.items()}
    assert frames == calm_frames, ("summary windows saw other frames", frames, calm_frames)


def assert_no_crash(hit: Outcome, stack: Stack | None = None, killed: tuple[str, ...] = ()) -> None:
    """Every process but the `killed` ones ("<verb>-<n>") ran to the end and stopped cleanly on
    SIGTERM (rc 0): nothing crashed or hung on the way, nothing needed help."""
    bad = {name: rc for name, rc in hit.exits.items() if name not in killed and rc != 0}
    assert not bad, (bad, stack.logs() if stack else "")


def _diff(what: str, calm: Outcome, hit: Outcome, missing: set[str], extra: set[str], logs: str) -> str:
    def show(ids: set[str], src: Outcome) -> list[tuple[Any, ...]]:
        return sorted(
            (e["camera_id"], e["phase"], e["frame_id"], e["track_id"]) for e in (src.events[i] for i in ids)
        )

    return f"{what}: missing {show(missing, calm)}; extra {show(extra, hit)}\n{logs}"


def row(scenario: str, calm: Outcome, hit: Outcome, recovered_s: float | None, note: str = "") -> FaultRow:
    summary = f"summaries {len(hit.summaries)}/{len(calm.summaries)}"
    return FaultRow(
        scenario,
        recovered_s,
        expected=len(calm.events),
        stored=len(hit.events),
        duplicated=hit.duplicated,
        skips=hit.skips,
        note=f"{summary}; {note}" if note else summary,
    )


# ---- a broker whose data outlives its process --------------------------------------------------


class S3Server:
    """moto's S3 server as a subprocess (it outlives any broker started on it), with one bucket."""

    def __init__(self, log_path: Path, bucket: str = "tansu") -> None:
        self.port = free_port()
        self.bucket = bucket
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto S3 server did not start; see {self.log_path}") from None
                time.sleep(0.1)
        # S3 CreateBucket is a plain PUT; moto accepts it unsigned.
        httpx.put(f"{self.endpoint}/{self.bucket}", timeout=10).raise_for_status()
        return self

    def tansu_env(self) -> dict[str, str]:
        """What Tansu's S3 engine (object_store) reads from its environment."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def durable_broker(s3: S3Server, log_path: Path) -> EmbeddedBroker:
    """A Tansu broker (not started) storing in `s3`'s bucket: stop() and start() again lose nothing."""
    return EmbeddedBroker(storage=f"s3://{s3.bucket}/", env=s3.tansu_env(), log_path=log_path)
