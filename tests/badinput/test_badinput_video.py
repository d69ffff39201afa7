"""Bad video files through a real camera worker: each ends as a state with a reason, never a crash.

Decision for images renamed .mp4: FFmpeg's image demuxers read them as a one-frame video, so the
camera publishes that one frame and stops at "end of file" — the same for PNG and JPEG.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.contracts import StatusUpdate
from configs.settings import IngestConfig
from ingest.camera import CameraWorker
from sightline.samples import remux
from sightline.testing.ingest_kit import MemoryFramePublisher, make_plan

HUGE = 4 << 30  # sparse: takes no disk, and must not be read into memory


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path, Path], Path]  # (tmp dir, a good 4 s clip) -> the file to open
    state: str  # final camera state
    reason: str  # a fragment of the final reason
    frames: tuple[int, int]  # published frames, min..max


def _zero_bytes(d: Path, _: Path) -> Path:
    p = d / "empty.mp4"
    p.touch()
    return p


def _random_bytes(d: Path, _: Path) -> Path:
    p = d / "random.mp4"
    p.write_bytes(random.Random(7).randbytes(256 * 1024))
    return p


def _image(ext: str) -> Callable[[Path, Path], Path]:
    def make(d: Path, _: Path) -> Path:
        img = np.zeros((90, 160, 3), np.uint8)
        img[20:70, 60:100] = (30, 30, 220)
        ok, buf = cv2.imencode(ext, img)
        assert ok
        p = d / f"still{ext}.mp4"
        p.write_bytes(buf.tobytes())
        return p

    return make


def _audio_only(d: Path, _: Path) -> Path:
    p = d / "sound.mp4"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 8000)
    return p


def _sparse_zeros(d: Path, _: Path) -> Path:
    p = d / "huge-zeros.mp4"
    with p.open("wb") as f:
        f.truncate(HUGE)
    return p


def _clip_then_sparse_tail(d: Path, clip: Path) -> Path:
    p = d / "huge-tail.mp4"
    shutil.copy(clip, p)
    with p.open("r+b") as f:
        f.truncate(HUGE)
    return p


def _truncated_faststart(d: Path, clip: Path) -> Path:
    src = remux(clip, d / "fs.mp4", {"movflags": "faststart"})  # the index (moov) in front
    data = src.read_bytes()
    p = d / "cut-faststart.mp4"
    p.write_bytes(data[: len(data) // 2])
    return p


def _corrupt_middle(d: Path, clip: Path) -> Path:
    data = bytearray(clip.read_bytes())
    rng = random.Random(3)
    start = len(data) // 3
    data[start : start + 4096] = rng.randbytes(4096)
    p = d / "corrupt-middle.mp4"
    p.write_bytes(bytes(data))
    return p


def _directory(d: Path, _: Path) -> Path:
    p = d / "folder.mp4"
    p.mkdir()
    return p


def _fifo(d: Path, _: Path) -> Path:
    p = d / "pipe.mp4"
    os.mkfifo(p)  # opening it would block forever: it must be refused before FFmpeg sees it
    return p


def _private_clip(d: Path, clip: Path) -> Path:
    """A clip outside the media dir (`d/media`): nothing opened inside the media dir may reach it."""
    (d / "private").mkdir(exist_ok=True)
    (d / "media").mkdir(exist_ok=True)
    return remux(clip, d / "private" / "secret.ts")


def _hls_reaching_out(d: Path, clip: Path) -> Path:
    _private_clip(d, clip)
    p = d / "media" / "evil.m3u8"
    p.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n../private/secret.ts\n#EXT-X-ENDLIST\n")
    return p


def _ffconcat_named_mp4(d: Path, clip: Path) -> Path:
    secret = _private_clip(d, clip)
    (d / "media" / "link").symlink_to(secret)  # the symlink is inside the media dir, its target is not
    p = d / "media" / "evil.mp4"
    p.write_text("ffconcat version 1.0\nfile 'link'\n")
    return p


REFUSED = "refused: not a self-contained video file"
CASES = [
    Case("zero-byte-file", _zero_bytes, "failed", "not a readable video file", (0, 0)),
    Case("random-bytes-named-mp4", _random_bytes, "failed", "not a readable video file", (0, 0)),
    Case("png-named-mp4-is-one-frame", _image(".png"), "stopped", "end of file", (1, 1)),
    Case("jpeg-named-mp4-is-one-frame", _image(".jpg"), "stopped", "end of file", (1, 1)),
    Case("audio-only-file", _audio_only, "failed", "no video stream", (0, 0)),
    Case("sparse-4GB-of-zeros", _sparse_zeros, "failed", "not a readable video file", (0, 0)),
    # The demuxer stops at the end of the clip's index; the 4 GB of zeros after it are never read.
    Case("clip-with-sparse-4GB-tail", _clip_then_sparse_tail, "stopped", "end of file", (8, 8)),
    # Index in front, data cut: the frames before the cut are published, then it fails as truncated.
    Case("truncated-faststart-mp4", _truncated_faststart, "failed", "file ends early (18 of the 40", (1, 7)),
    # Frames before the damage are published; the read error then fails the camera with its reason.
    Case("corrupt-bytes-mid-file", _corrupt_middle, "failed", "truncated or corrupt file", (1, 8)),
    Case("directory-named-mp4", _directory, "failed", "not a regular file", (0, 0)),
    Case("fifo-named-mp4", _fifo, "failed", "not a regular file", (0, 0)),
    Case("device-file", lambda d, c: Path("/dev/zero"), "failed", "not a regular file", (0, 0)),
    # Container formats that open further files: refused by the demuxer whitelist for local files.
    Case("hls-playlist-reaching-out-of-the-media-dir", _hls_reaching_out, "failed", REFUSED, (0, 0)),
    Case("ffconcat-named-mp4-through-a-symlink", _ffconcat_named_mp4, "failed", REFUSED, (0, 0)),
]


def _run(url: str, timeout_s: float = 20.0) -> tuple[MemoryFramePublisher, StatusUpdate]:
    sink = MemoryFramePublisher(keep_jpeg=False)
    w = CameraWorker(make_plan(url, camera_id="bad"), IngestConfig(read_timeout_s=2.0), sink)
    w.start()
    final = sink.wait_state(("failed", "stopped"), timeout_s)
    assert w.join(10), "the camera thread must end"
    return sink, final


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_video_file_ends_as_a_state_with_a_reason(case: Case, tmp_path: Path, short_clip: Path) -> None:
    path = case.make(tmp_path, short_clip)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    sink, final = _run(str(path))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert final.component == "camera" and final.id == "bad"
    assert final.state == case.state, final.reason
    assert case.reason in final.reason
    assert case.frames[0] <= len(sink.frames) <= case.frames[1], (len(sink.frames), final.reason)
    assert sink.updates[0].state == "starting"
    assert sink.updates[-1].state == case.state  # nothing after the final state
    assert grown_mib < 200, f"peak memory grew by {grown_mib:.0f} MiB: the file was read into memory"
    if sink.frames:  # whatever was published ends with a marker the analyzer can close tracks on
        assert len(sink.ends) == 1 and sink.ends[0].last_frame_id == sink.frames[-1][0].frame_id


def test_a_bad_file_does_not_stop_a_good_camera_in_the_same_process(tmp_path: Path, short_clip: Path) -> None:
    """Two workers side by side: one fails on garbage, the other plays its clip to the end."""
    bad_sink, good_sink = MemoryFramePublisher(keep_jpeg=False), MemoryFramePublisher(keep_jpeg=False)
    bad = CameraWorker(make_plan(str(_random_bytes(tmp_path, short_clip)), "bad"), IngestConfig(), bad_sink)
    good = CameraWorker(make_plan(str(short_clip), "good"), IngestConfig(), good_sink)
    bad.start()
    good.start()
    assert bad_sink.wait_state(("failed",), 20).state == "failed"
    assert good_sink.wait_state(("stopped",), 20).reason == "end of file"
    assert bad.join(5) and good.join(5)
    assert len(good_sink.frames) == 8  # 4 s at 2 fps


@pytest.mark.parametrize("maker", [_hls_reaching_out, _ffconcat_named_mp4], ids=["hls", "ffconcat"])
def test_decord_reader_refuses_container_scripts_too(
    maker: Callable[[Path, Path], Path], tmp_path: Path, short_clip: Path
) -> None:
    """decord's own FFmpeg takes no whitelist: the file is judged by PyAV's open first."""
    from ingest import decord_source

    if not decord_source.available():
        pytest.skip("decord is not installed")
    sink = MemoryFramePublisher(keep_jpeg=False)
    cfg = IngestConfig(read_timeout_s=2.0, file_reader="decord")
    w = CameraWorker(make_plan(str(maker(tmp_path, short_clip)), camera_id="bad"), cfg, sink)
    w.start()
    final = sink.wait_state(("failed", "stopped"), 20)
    assert w.join(10)
    assert final.state == "failed" and REFUSED in final.reason and not sink.frames
