"""HTTP sources: a file served over HTTP plays to its end; a playlist cannot reach local files."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from configs.settings import IngestConfig
from ingest import metrics
from ingest.camera import CameraWorker
from sightline.samples import remux
from sightline.testing.ingest_kit import MemoryFramePublisher, make_plan


@pytest.fixture
def http_dir(tmp_path: Path, short_clip: Path) -> Iterator[tuple[str, Path]]:
    (tmp_path / "clip.mp4").write_bytes(short_clip.read_bytes())
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _run(url: str, camera_id: str) -> tuple[MemoryFramePublisher, str, str]:
    sink = MemoryFramePublisher(keep_jpeg=False)
    w = CameraWorker(make_plan(url, camera_id), IngestConfig(), sink)
    w.start()
    final = sink.wait_state(("stopped", "failed"), 20)
    assert w.join(5)
    return sink, final.state, final.reason


def test_a_video_file_over_http_plays_to_its_end_and_counts_metrics(http_dir: tuple[str, Path]) -> None:
    base, _ = http_dir

    def sample(name: str, **labels: str) -> float | None:
        return metrics.REGISTRY.get_sample_value(f"sightline_ingest_{name}", {"camera_id": "web", **labels})

    before = sample("frames_published_total") or 0.0
    sink, state, reason = _run(f"{base}/clip.mp4", "web")
    assert (state, reason) == ("stopped", "end of file")
    assert len(sink.frames) == 8
    assert sample("frames_published_total") == before + 8
    assert (sample("frames_decoded_total") or 0) >= 40
    assert sample("camera_state", state="stopped") == 1.0
    assert sample("camera_state", state="streaming") == 0.0


def test_a_playlist_cannot_make_ffmpeg_read_local_files(
    http_dir: tuple[str, Path], short_clip: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A segment FFmpeg's HLS demuxer would happily read from disk if the file protocol were allowed.
    local = remux(short_clip, tmp_path_factory.mktemp("private") / "secret.ts")
    base, root = http_dir
    (root / "evil.m3u8").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nfile://{local}\n#EXT-X-ENDLIST\n"
    )
    sink, state, reason = _run(f"{base}/evil.m3u8", "evil")
    assert not sink.frames, "a local file was read through an HTTP playlist"
    assert state == "failed" and "not a playable video stream" in reason
