"""Sources: what may be opened, and how bad input ends — as a state with a reason, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bus.broker import free_port
from bus.camera_urls import SourceRefused, resolve
from bus.contracts import StatusUpdate
from bus.redact import redact_url as redact
from configs.settings import IngestConfig
from ingest.camera import CameraWorker
from ingest.plan import CameraPlan
from sightline.testing.ingest_kit import MemoryFramePublisher


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("concat:/etc/passwd|/etc/hosts", "scheme 'concat' is not allowed"),
        ("subfile:,start,0,end,10,:/etc/passwd", "scheme 'subfile' is not allowed"),
        ("data:video/mp4;base64,AAAA", "scheme 'data' is not allowed"),
        ("ftp://example.com/a.mp4", "scheme 'ftp' is not allowed"),
        ("file://otherhost/clip.mp4", "remote host"),
        ("rtsp:///cam", "without a host"),
        ("", "empty url"),
    ],
)
def test_refused_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(SourceRefused, match=why):
        resolve(url, IngestConfig())


def test_local_files_must_be_inside_the_media_dirs_even_through_symlinks(tmp_path: Path) -> None:
    media, outside = tmp_path / "media", tmp_path / "private"
    media.mkdir()
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"x")
    (media / "ok.mp4").write_bytes(b"x")
    os.symlink(outside / "secret.mp4", media / "link.mp4")
    cfg = IngestConfig(media_dirs=(str(media),))
    assert resolve(str(media / "ok.mp4"), cfg).kind == "file"
    assert resolve(f"file://{media / 'ok.mp4'}", cfg).target == str(media / "ok.mp4")
    for bad in (outside / "secret.mp4", media / "link.mp4", media / ".." / "private" / "secret.mp4"):
        with pytest.raises(SourceRefused, match="outside the allowed media directories"):
            resolve(str(bad), cfg)
        with pytest.raises(SourceRefused, match="outside"):
            resolve(f"file:{bad}", cfg)


def test_schemes_come_from_config_and_passwords_never_show() -> None:
    url = "rtsp://admin:hunter2@10.0.0.5:554/stream1"
    only_files = IngestConfig(allowed_schemes=("file",))
    with pytest.raises(SourceRefused, match="'rtsp' is not allowed"):
        resolve(url, only_files)
    src = resolve(url, IngestConfig())
    assert src.kind == "rtsp" and src.target == url
    assert "hunter2" not in src.display and redact(url) == "rtsp://admin:***@10.0.0.5:554/stream1"


def _run_camera(
    url: str, cfg: IngestConfig | None = None, timeout_s: float = 20.0
) -> tuple[MemoryFramePublisher, StatusUpdate]:
    plan = CameraPlan(
        camera_id="bad",
        url=url,
        sample_fps=2.0,
        gate="always",
        realtime=False,
        loop=False,
        keyframes_only=False,
    )
    sink = MemoryFramePublisher()
    w = CameraWorker(plan, cfg or IngestConfig(), sink)
    w.start()
    final = sink.wait_state(("failed", "stopped"), timeout_s)
    assert w.join(5), "the camera thread must end"
    return sink, final


def test_a_non_video_file_fails_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    sink, final = _run_camera(str(path))
    assert final.state == "failed" and "not a readable video file" in final.reason
    assert sink.states()[0] == "starting" and not sink.frames


def test_a_truncated_mp4_fails_with_a_reason(tmp_path: Path, short_clip: Path) -> None:
    data = short_clip.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    _, final = _run_camera(str(path))
    assert final.state == "failed"
    assert "truncated" in final.reason or "invalid" in final.reason.lower()


def test_a_missing_file_and_a_refused_scheme_fail_before_opening(tmp_path: Path) -> None:
    _, missing = _run_camera(str(tmp_path / "nope.mp4"))
    assert missing.state == "failed" and "file not found" in missing.reason
    _, refused = _run_camera("concat:a.mp4|b.mp4")
    assert refused.state == "failed" and refused.reason.startswith("refused: scheme 'concat'")


def test_an_unreachable_camera_keeps_retrying_until_stopped() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nobody listens there
    plan = CameraPlan(
        camera_id="gone",
        url=url,
        sample_fps=2.0,
        gate="always",
        realtime=False,
        loop=False,
        keyframes_only=False,
    )
    sink = MemoryFramePublisher()
    w = CameraWorker(plan, IngestConfig(reconnect_initial_s=0.05, reconnect_max_s=0.2), sink)
    w.start()
    assert sink.wait_for(lambda s: s.states().count("reconnecting") >= 3, 10), sink.states()
    first = next(u for u in sink.updates if u.state == "reconnecting")
    assert "connection refused" in first.reason and "retry in" in first.reason
    w.stop("deleted")
    assert w.join(5)
    assert sink.updates[-1].state == "stopped" and sink.updates[-1].reason == "deleted"
    assert sink.updates[-1].counters["reconnects"] >= 3


def test_a_looping_file_starts_a_new_session_each_time(short_clip: Path) -> None:
    plan = CameraPlan(
        camera_id="loop",
        url=str(short_clip),
        sample_fps=2.0,
        gate="always",
        realtime=False,
        loop=True,
        keyframes_only=False,
    )
    sink = MemoryFramePublisher(keep_jpeg=False)
    w = CameraWorker(plan, IngestConfig(), sink)
    w.start()
    assert sink.wait_for(lambda s: len({m.source_session for m, _ in s.frames}) >= 3, 20)
    w.stop()
    assert w.join(5)
    by_session: dict[str, list[int]] = {}
    for m, _ in sink.frames:
        by_session.setdefault(m.source_session, []).append(m.frame_id)
    full = list(by_session.values())[:2]
    assert all(ids == [i * 5 for i in range(8)] for ids in full)  # frame ids restart per session
    assert sink.updates[-1].state == "stopped"


def test_realtime_file_is_paced_like_a_camera(tmp_path: Path) -> None:
    from sightline.samples import generate_clip

    clip = generate_clip(tmp_path / "two.mp4", duration_s=2, fps=10, size=(160, 90))
    plan = CameraPlan(
        camera_id="rt",
        url=str(clip),
        sample_fps=5.0,
        gate="always",
        realtime=True,
        loop=False,
        keyframes_only=False,
    )
    sink = MemoryFramePublisher(keep_jpeg=False)
    w = CameraWorker(plan, IngestConfig(), sink)
    w.start()
    sink.wait_state(("stopped",), 10)
    starting = next(u.ts for u in sink.updates if u.state == "streaming")
    stopped = sink.updates[-1].ts
    assert 1.7 <= (stopped - starting).total_seconds() <= 3.0
    walls = [m.wall_ts for m, _ in sink.frames]
    assert len(walls) == 10 and walls == sorted(walls)
