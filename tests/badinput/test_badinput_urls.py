"""Camera URLs that must not reach FFmpeg: refused at the API (422, with the reason) and at ingest.

The API check runs where the API runs; a file only the ingest host has is judged by where it
points (`resolve(..., must_exist=False)`), and ingest checks again, existence included.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bus.camera_urls import SourceRefused, resolve
from configs import Settings
from configs.settings import IngestConfig
from dashboard.app import create_app
from ingest.camera import CameraWorker
from sightline.testing.ingest_kit import MemoryFramePublisher, make_plan

PASSWORD = "pw-9f8e7d"


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """media/ (allowed, with ok.mp4 and a symlink out) and private/ (not allowed) side by side."""
    root, private = tmp_path / "media", tmp_path / "private"
    root.mkdir()
    private.mkdir()
    (private / "secret.mp4").write_bytes(b"not for cameras")
    (root / "ok.mp4").write_bytes(b"x")
    os.symlink(private / "secret.mp4", root / "escape.mp4")
    os.symlink(private, root / "dir-link")
    return root


# (id, url with {media} for the allowed dir, fragment of the reason)
REFUSED = [
    ("file-scheme-outside-media", "file:///etc/passwd", "outside the allowed media directories"),
    ("bare-path-outside-media", "/etc/passwd", "outside the allowed media directories"),
    ("dotdot-out-of-media", "{media}/../private/secret.mp4", "outside the allowed media directories"),
    ("dotdot-file-url", "file://{media}/../private/secret.mp4", "outside the allowed media directories"),
    ("symlink-file-escapes", "{media}/escape.mp4", "outside the allowed media directories"),
    ("symlink-dir-escapes", "{media}/dir-link/secret.mp4", "outside the allowed media directories"),
    ("relative-path", "clips/a.mp4", "outside the allowed media directories"),
    ("file-url-remote-host", "file://fileserver/share/a.mp4", "remote host"),
    ("concat", "concat:{media}/ok.mp4|/etc/passwd", "scheme 'concat' is not allowed"),
    ("subfile", "subfile:,start,0,end,10,:/etc/passwd", "scheme 'subfile' is not allowed"),
    ("data", "data:video/mp4;base64,AAAAIGZ0eXA=", "scheme 'data' is not allowed"),
    ("pipe", "pipe:0", "scheme 'pipe' is not allowed"),
    ("tcp", "tcp://127.0.0.1:9/", "scheme 'tcp' is not allowed"),
    ("udp", "udp://239.0.0.1:1234", "scheme 'udp' is not allowed"),
    ("ftp-with-password", f"ftp://u:{PASSWORD}@h/a.mp4", "scheme 'ftp' is not allowed"),
    ("hls-plus-http", "hls+http://h/x.m3u8", "scheme 'hls+http' is not allowed"),
    ("crypto", "crypto:{media}/ok.mp4", "scheme 'crypto' is not allowed"),
    ("gopher", "gopher://h/1", "scheme 'gopher' is not allowed"),
    ("windows-drive", "C:\\video\\a.mp4", "scheme 'c' is not allowed"),
    ("webcam-not-enabled", "webcam:0", "scheme 'webcam' is not allowed"),
    ("rtsp-without-host", "rtsp:///cam", "without a host"),
    ("http-without-host", "http:///x.mp4", "without a host"),
    ("nul-byte", "{media}/ok.mp4\x00.txt", "control characters"),
    ("newline", "rtsp://h/cam\nInjected: 1", "control characters"),
]
ALLOWED = [
    ("file-in-media", "{media}/ok.mp4"),
    ("file-url-in-media", "file://{media}/ok.mp4"),
    ("file-only-on-the-ingest-host", "{media}/not-here-yet.mp4"),  # the API host need not have it
    ("rtsp-with-password", f"rtsp://admin:{PASSWORD}@10.0.0.5:554/live"),
    ("https", "https://cams.example/a.mp4"),
]


@pytest.fixture
def api(make_settings: Callable[..., Settings], media: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(ingest={"media_dirs": [str(media)]}))) as c:
        yield c


@pytest.mark.parametrize(("case", "url", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_api_refuses_the_url_with_422_and_the_reason(
    api: TestClient, media: Path, case: str, url: str, why: str
) -> None:
    r = api.post("/api/cameras", json={"id": "c1", "url": url.format(media=media)})
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["loc"] == ["body", "url"] and why in err["msg"], err
    assert PASSWORD not in r.text


@pytest.mark.parametrize(("case", "url"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_api_lets_allowed_urls_through(api: TestClient, media: Path, case: str, url: str) -> None:
    r = api.post("/api/cameras", json={"id": "c1", "url": url.format(media=media)})
    # Past every URL check; this app has no broker, so the write itself is refused with a reason.
    assert r.status_code == 503 and "bus.bootstrap" in r.json()["detail"]


# Ingest checks again (a control message may come from anywhere). These are the cases
# tests/unit/test_ingest_sources.py does not already cover.
INGEST_ONLY_NEW = [
    r
    for r in REFUSED
    if r[0] not in {"concat", "subfile", "data", "file-url-remote-host", "rtsp-without-host"}
]


@pytest.mark.parametrize(("case", "url", "why"), INGEST_ONLY_NEW, ids=[r[0] for r in INGEST_ONLY_NEW])
def test_ingest_refuses_the_url_before_ffmpeg(media: Path, case: str, url: str, why: str) -> None:
    url = url.format(media=media)
    cfg = IngestConfig(media_dirs=(str(media),))
    with pytest.raises(SourceRefused) as info:
        resolve(url, cfg)
    assert why in str(info.value) and PASSWORD not in str(info.value)


def test_a_refused_url_fails_the_camera_with_the_reason(media: Path) -> None:
    """End of the line for a control message that skipped the API: a failed camera, no crash."""
    sink = MemoryFramePublisher()
    cfg = IngestConfig(media_dirs=(str(media),))
    w = CameraWorker(make_plan(f"{media}/escape.mp4", "esc"), cfg, sink)
    w.start()
    final = sink.wait_state(("failed",), 10)
    assert w.join(5)
    assert final.reason.startswith("refused: ") and "outside the allowed media directories" in final.reason
    assert not sink.frames
