"""Which camera URLs may be opened: allowed schemes and local media directories.

FFmpeg understands many pseudo-protocols (`concat:`, `subfile:`, `data:`, `file:` on any
path, HLS playlists that point at local files). A camera URL comes from a user, so it is
checked here both where it enters (the API, before it reaches the control topic) and where it
is opened (ingest, which also tells FFmpeg which protocols it may use). The policy lives in
`bus`, beside the `CameraSpec` contract it judges, so that both may use it without the API
importing ingest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from bus.redact import redact_url
from configs.settings import IngestConfig

SourceKind = Literal["file", "rtsp", "http", "webcam"]


class SourceRefused(ValueError):
    """A URL that configuration does not allow; the message says why, for the status reason."""


@dataclass(frozen=True)
class ResolvedSource:
    kind: SourceKind
    target: str  # what is passed to FFmpeg
    display: str  # the URL with any password removed, for logs and status


def resolve(url: str, cfg: IngestConfig, *, must_exist: bool = True) -> ResolvedSource:
    """Check `url` against the allowed schemes and media dirs; raise SourceRefused if not allowed.

    `must_exist=False` is the API's check: the file may live only on the ingest host, so only
    where it points is judged (symlinks that exist here are still followed).
    """
    url = url.strip()
    if not url:
        raise SourceRefused("empty url")
    display = redact_url(url)
    if "\x00" in url or "\n" in url:
        raise SourceRefused("url contains control characters")
    scheme = _scheme(url)
    if scheme not in {s.lower() for s in cfg.allowed_schemes}:
        allowed = ", ".join(cfg.allowed_schemes) or "none"
        raise SourceRefused(f"scheme {scheme!r} is not allowed (allowed: {allowed})")
    if scheme == "file":
        path = _local_path(url)
        return ResolvedSource("file", str(_check_file(path, cfg, must_exist)), display)
    if scheme in ("rtsp", "rtsps"):
        _need_host(url, scheme)
        return ResolvedSource("rtsp", url, display)
    if scheme in ("http", "https"):
        _need_host(url, scheme)
        return ResolvedSource("http", url, display)
    if scheme == "webcam":
        return ResolvedSource("webcam", _webcam_device(url), display)
    raise SourceRefused(f"scheme {scheme!r} is not supported by ingest")


def _scheme(url: str) -> str:
    if url.startswith("/") or url.startswith("."):
        return "file"
    head, sep, _ = url.partition(":")
    if not sep:
        return "file"  # a relative path
    # "C:" style or "clip:01.mp4" both count as a scheme: FFmpeg would read them as protocols.
    return head.lower()


def _local_path(url: str) -> Path:
    if url.lower().startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise SourceRefused(f"file url with a remote host {parts.hostname!r} is not allowed")
        return Path(parts.path)
    if url.lower().startswith("file:"):
        return Path(url[5:])
    return Path(url)


def _check_file(path: Path, cfg: IngestConfig, must_exist: bool = True) -> Path:
    if not str(path):
        raise SourceRefused("empty file path")
    real = Path(os.path.realpath(path))  # symlinks resolved: a link cannot escape the media dirs
    if cfg.media_dirs:
        roots = [Path(os.path.realpath(d)) for d in cfg.media_dirs]
        if not any(real == r or r in real.parents for r in roots):
            raise SourceRefused(
                f"{path} is outside the allowed media directories ({', '.join(cfg.media_dirs)})"
            )
    if not must_exist:
        return real
    if not real.exists():
        raise SourceRefused(f"file not found: {path}")
    if not real.is_file():
        raise SourceRefused(f"not a regular file: {path}")
    return real


def _need_host(url: str, scheme: str) -> None:
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        raise SourceRefused(f"malformed {scheme} url: {exc}") from None
    if not host:
        raise SourceRefused(f"{scheme} url without a host")


def _webcam_device(url: str) -> str:
    rest = url.split(":", 1)[1].lstrip("/")
    device = f"/dev/video{rest}" if rest.isdigit() else "/" + rest
    if not device.startswith("/dev/video"):
        raise SourceRefused(f"webcam device must be /dev/videoN, got {device}")
    return device
