"""Test helpers for ingest on a real broker: run the service in a thread, register cameras, read topics."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from bus.contracts import CameraSpec, ControlMessage, EndOfStream, FrameMeta, StatusUpdate
from bus.kafka import Producer, decode_end_of_stream, decode_frame, ensure_topics
from bus.topics import Topics
from configs import Settings
from ingest.plan import CameraPlan


@contextmanager
def running_ingest(settings: Settings) -> Iterator[threading.Event]:
    """`ingest.service.run` in a thread; asserts it returns 0 soon after stop is set."""
    from ingest.service import run

    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(run(settings, stop)), daemon=True)
    t.start()
    try:
        yield stop
    finally:
        stop.set()
        t.join(20)
    assert not t.is_alive(), "ingest did not stop within 20 s"
    assert result == [0]


def register(bootstrap: str, topics: Topics, spec: CameraSpec | None = None, *, delete: str = "") -> None:
    ensure_topics(bootstrap, topics.all(), 3)
    p = Producer(bootstrap)
    if delete:
        msg = ControlMessage(op="delete", kind="camera", id=delete)
    else:
        assert spec is not None
        msg = ControlMessage(op="upsert", kind="camera", id=spec.id, camera=spec)
    p.send(topics.control, msg.key, msg)
    p.flush()
    p.close()


class TopicReader:
    """A group-less reader of every partition of a topic from the beginning."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        ensure_topics(bootstrap, [topic], 3)
        self.c = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        deadline = time.monotonic() + 10
        while not (parts := self.c.partitions_for_topic(topic)):
            assert time.monotonic() < deadline, f"no partitions for {topic}"
            time.sleep(0.05)
        tps = [TopicPartition(topic, p) for p in parts]
        self.c.assign(tps)
        self.c.seek_to_beginning(*tps)

    def records(self, timeout_ms: int = 200) -> list[Any]:
        out = []
        for recs in self.c.poll(timeout_ms=timeout_ms).values():
            out.extend(recs)
        return out

    def close(self) -> None:
        self.c.close()


def collect_until(reader: TopicReader, done: Callable[[list[Any]], bool], timeout_s: float) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done(got):
        got.extend(reader.records())
    return got


def frames_of(records: list[Any]) -> list[tuple[FrameMeta, bytes]]:
    return [decode_frame(r) for r in records if decode_end_of_stream(r) is None]


def statuses(records: list[Any]) -> list[StatusUpdate]:
    return [StatusUpdate.model_validate_json(r.value) for r in records]


SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = str(Path(__file__).with_name("rtsp_server.py"))


def rtsp_server_available() -> bool:
    """True when the system Python can import GStreamer's RTSP server bindings."""
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0


class RtspServer:
    """The GStreamer test server as a subprocess that can be killed and started again on the same port."""

    def __init__(
        self,
        port: int,
        *,
        path: str = "/cam",
        fps: int = 25,
        size: str = "640x480",
        user: str = "",
        password: str = "",
        file: str = "",
    ) -> None:
        self.port, self.path, self.fps, self.size = port, path, fps, size
        self.file = file  # served once per client, in real time (default: the endless test pattern)
        self.user, self.password = user, password
        self.url = f"rtsp://127.0.0.1:{port}{path}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 15.0) -> None:
        cmd = [SYSTEM_PYTHON, RTSP_SERVER, "--port", str(self.port), "--path", self.path]
        cmd += ["--fps", str(self.fps), "--size", self.size]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password]
        if self.file:
            cmd += ["--file", self.file]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                return
            if not line and self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"RTSP test server exited: {err[-500:]}")
        self.kill()
        raise TimeoutError("RTSP test server did not become ready")

    def freeze(self) -> None:
        """SIGSTOP: the socket stays open but nothing arrives (a hung camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class MemoryFramePublisher:
    """A frame publisher that keeps everything in memory (unit tests, benchmarks without a broker)."""

    def __init__(self, keep_jpeg: bool = True) -> None:
        self.frames: list[tuple[FrameMeta, bytes]] = []
        self.updates: list[StatusUpdate] = []
        self.ends: list[EndOfStream] = []
        self.keep_jpeg = keep_jpeg
        self._cond = threading.Condition()

    def frame(self, meta: FrameMeta, jpeg: bytes) -> None:
        with self._cond:
            self.frames.append((meta, jpeg if self.keep_jpeg else b""))
            self._cond.notify_all()

    def status(self, update: StatusUpdate) -> None:
        with self._cond:
            self.updates.append(update)
            self._cond.notify_all()

    def end_of_stream(self, eos: EndOfStream) -> None:
        with self._cond:
            self.ends.append(eos)
            self._cond.notify_all()

    def states(self) -> list[str]:
        return [u.state for u in self.updates]

    def wait_for(self, check: Callable[[MemoryFramePublisher], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not check(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def wait_state(self, states: tuple[str, ...], timeout_s: float) -> StatusUpdate:
        ok = self.wait_for(lambda s: any(u.state in states for u in s.updates), timeout_s)
        assert ok, f"no state in {states} within {timeout_s}s: {self.states()}"
        return next(u for u in self.updates if u.state in states)


def make_plan(url: str, camera_id: str = "cam", **overrides: Any) -> CameraPlan:
    """A camera plan with test defaults: 2 fps, gate always, replay (not realtime), no loop."""
    fields: dict[str, Any] = {"sample_fps": 2.0, "gate": "always", "realtime": False, "loop": False}
    return CameraPlan(camera_id=camera_id, url=url, **{"keyframes_only": False, **fields, **overrides})
