"""Opening a source with PyAV and iterating its decoded video frames, in order, with media time.

Frames come out undecorated (`av.VideoFrame`): nothing is converted to RGB here, so frames
that sampling or gating discard cost only their decode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import av
import av.error

from bus.camera_urls import ResolvedSource, SourceKind
from bus.redact import redact_text
from configs.settings import IngestConfig
from lifecycle import pause

log = logging.getLogger(__name__)

# What FFmpeg may touch for each kind of source (its `protocol_whitelist`).
PROTOCOLS: dict[SourceKind, str] = {
    "file": "file",
    "rtsp": "rtsp,rtsps,rtp,srtp,tcp,udp,tls",
    "http": "http,https,tcp,tls,crypto,httpproxy",
    "webcam": "file",
}


# What FFmpeg may demux for a local file (its `format_whitelist`). A file inside a media dir must
# not reach other files: the HLS demuxer follows a playlist's entries (`../private/x.ts`), the
# concat demuxer an ffconcat script's (even one named .mp4, through a symlink), image2 a numbered
# pattern, dash/imf their manifests. `protocol_whitelist=file` cannot tell those apart from the
# file itself, and re-checking every path FFmpeg opens would need a custom I/O layer, so local
# sources get a closed list of self-contained containers and elementary streams instead. Audio-only
# containers stay in, so such a file is refused with the clearer "no video stream".
FILE_FORMATS = ",".join(
    (
        "mov", "matroska", "avi", "mpegts", "mpeg", "mpegvideo", "flv", "asf", "ogg", "nut", "mxf",
        "dv", "h264", "hevc", "m4v", "mjpeg", "ivf", "obu", "yuv4mpegpipe",
        "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "gif", "wav", "mp3", "aac", "flac",
    )
)  # fmt: skip


class SourceError(Exception):
    """Opening or reading failed. `permanent` errors are not retried (bad file, wrong credentials)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass
class Decoded:
    frame: av.VideoFrame
    pts_s: float
    keyframe: bool
    index: int  # n-th decoded frame of this session, from 0


class VideoSource:
    """One opened container. Iterate `frames()`; close when done. Not thread-safe."""

    def __init__(self, src: ResolvedSource, cfg: IngestConfig, *, keyframes_only: bool = False) -> None:
        self.src = src
        self.live = src.kind in ("rtsp", "webcam")
        self._container = _open(src, cfg)
        streams = self._container.streams.video
        if not streams:
            self._container.close()
            raise SourceError("no video stream in the source", permanent=True)
        self.stream = streams[0]
        self.keyframes_only = keyframes_only
        if keyframes_only:
            # The decoder drops non-key frames itself: no decode cost for them at all. Frame
            # threads would only add hand-off overhead to the few frames left; slices still help.
            self.stream.codec_context.skip_frame = "NONKEY"
            self.stream.thread_type = "SLICE"
        else:
            self.stream.thread_type = "AUTO"  # frame threads: decode uses both cores
        if src.kind == "http" and self._container.duration is None:
            self.live = True  # an endless HTTP stream behaves like a camera
        self.time_base = self.stream.time_base
        self.nominal_fps = float(self.stream.average_rate or self.stream.guessed_rate or 0) or None
        self.last_progress = time.monotonic()
        pause.clock()  # started before the first frame, so a pause is always seen
        self._stall_s = cfg.read_timeout_s * 2
        # Recording (ingest.recorder): every video packet, after its frames were decoded.
        self.on_packet: Callable[[Any], None] | None = None

    def frames(self) -> Iterator[Decoded]:
        """Decoded frames in decode order; raises SourceError on read errors and decode stalls.

        `index` is the frame's position in the stream: with keyframes_only the skipped frames
        still count (one video packet is one frame), so ids mean the same in both modes.
        """
        decoded = 0
        packets = 0
        last_pts = -1.0
        try:
            for packet in self._container.demux(self.stream):
                now = time.monotonic()
                if packet.size:
                    packets += 1
                    if self.keyframes_only and packet.is_keyframe:
                        self.last_progress = now  # long GOPs are not a stall
                if now - self.last_progress > self._stall_s and not self._we_were_paused(now):
                    # Packets arrive but nothing decodes (garbage, missing keyframes).
                    raise SourceError(
                        f"no decodable frame for {now - self.last_progress:.1f}s", permanent=False
                    )
                for frame in packet.decode():
                    pts_s = self._pts_seconds(frame, last_pts)
                    last_pts = pts_s
                    self.last_progress = time.monotonic()
                    index = packets - 1 if self.keyframes_only else decoded
                    yield Decoded(frame, pts_s, bool(frame.key_frame), index)
                    # The time our consumer held the frame (a file waits for a slow analyzer on a
                    # busy machine) is not the source stalling: count from when it asks again.
                    self.last_progress = time.monotonic()
                    decoded += 1
                if self.on_packet is not None:
                    self.on_packet(packet)  # muxing rebases the packet's times, so it goes last
            listed = self.stream.frames or 0
            if self.src.kind == "file" and 0 < packets < listed:
                # The index promised more (an MP4 with its moov in front, cut short): say so.
                raise SourceError(
                    f"file ends early ({packets} of the {listed} frames its index lists)", permanent=True
                )
        except av.error.ExitError:
            raise SourceError("read timed out (no data from the source)", permanent=False) from None
        except av.error.FFmpegError as exc:
            # A truncated file or a broken stream: the frames so far were good.
            raise SourceError(f"read error: {_ffmpeg_reason(exc)}", permanent=not self.live) from None

    def _we_were_paused(self, now: float) -> bool:
        """The silence was this process not running (SIGSTOP, a frozen VM), not the source: start
        counting again. A stall is only what the source did while we were there to see it."""
        paused = pause.clock().paused_since(self.last_progress)
        if now - self.last_progress - paused > self._stall_s:
            return False
        log.info("decode resumed after this process was paused for %.1fs; not a source stall", paused)
        self.last_progress = now
        return True

    def _pts_seconds(self, frame: av.VideoFrame, last: float) -> float:
        if frame.pts is not None and self.time_base is not None:
            return float(frame.pts * self.time_base)
        if frame.time is not None:
            return float(frame.time)
        step = 1.0 / self.nominal_fps if self.nominal_fps else 0.04
        return last + step if last >= 0 else 0.0

    def close(self) -> None:
        try:
            self._container.close()
        except av.error.FFmpegError:  # pragma: no cover - closing a broken stream
            log.debug("close failed", exc_info=True)


class Source(Protocol):
    """What a camera needs from a source: decoded frames in order, whether it is live, close."""

    live: bool

    def frames(self) -> Iterator[Decoded]: ...
    def close(self) -> None: ...


def open_source(src: ResolvedSource, cfg: IngestConfig, *, sample_fps: float, keyframes_only: bool) -> Source:
    """PyAV for everything; decord for local files when configured (`ingest.file_reader`)."""
    if src.kind == "file" and cfg.file_reader == "decord":
        from ingest.decord_source import DecordSource

        return DecordSource(src, cfg, sample_fps=sample_fps, keyframes_only=keyframes_only)
    return VideoSource(src, cfg, keyframes_only=keyframes_only)


def check_file_format(src: ResolvedSource, cfg: IngestConfig) -> None:
    """Open and close a local file under FILE_FORMATS, for readers that take no whitelist (decord)."""
    _open(src, cfg).close()


def _open(src: ResolvedSource, cfg: IngestConfig) -> Any:
    options: dict[str, str] = {"protocol_whitelist": PROTOCOLS[src.kind]}
    kwargs: dict[str, Any] = {"timeout": (cfg.open_timeout_s, cfg.read_timeout_s)}
    if src.kind == "rtsp":
        # TCP survives NAT and packet loss; a small probe makes the first frame come fast.
        options.update(rtsp_transport="tcp", probesize="500000", analyzeduration="500000")
    elif src.kind == "http":
        options.update(reconnect="0", probesize="1000000", analyzeduration="1000000")
    elif src.kind == "webcam":
        kwargs["format"] = "v4l2"
    elif src.kind == "file":
        options["format_whitelist"] = FILE_FORMATS
    try:
        return av.open(src.target, options=options, **kwargs)
    except av.error.ArgumentError as exc:
        if src.kind == "file":  # EINVAL at open: FFmpeg probed a format off the list
            raise SourceError(
                "refused: not a self-contained video file (playlists, concat scripts and other formats "
                "that can read further files are not opened from local paths)",
                permanent=True,
            ) from None
        raise classify_open_error(exc, src) from None
    except av.error.FFmpegError as exc:
        raise classify_open_error(exc, src) from None
    except OSError as exc:
        raise SourceError(f"cannot open: {exc.strerror or exc}", permanent=src.kind == "file") from None


def classify_open_error(exc: Exception, src: ResolvedSource) -> SourceError:
    reason = _ffmpeg_reason(exc)
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return SourceError(f"unauthorized: check the camera's credentials ({reason})", permanent=True)
    if isinstance(exc, av.error.ExitError):
        return SourceError(f"open timed out after {reason}", permanent=src.kind == "file")
    if src.kind == "file":
        if isinstance(exc, av.error.InvalidDataError):
            return SourceError(
                f"not a readable video file (invalid or truncated data): {reason}", permanent=True
            )
        return SourceError(f"cannot open file: {reason}", permanent=True)
    if src.kind == "http" and isinstance(exc, av.error.InvalidDataError):
        # The server answered, with something that is not a video: retrying will not change that.
        return SourceError(f"not a playable video stream at {src.display}: {reason}", permanent=True)
    if isinstance(exc, av.error.ConnectionRefusedError):
        return SourceError(f"connection refused by {src.display}", permanent=False)
    if isinstance(exc, av.error.HTTPNotFoundError):
        return SourceError(f"stream not found (404) at {src.display}", permanent=False)
    return SourceError(f"cannot open {src.display}: {reason}", permanent=False)


def _ffmpeg_reason(exc: Exception) -> str:
    strerror = getattr(exc, "strerror", None)
    text = str(strerror or exc).splitlines()[0][:300]
    return redact_text(text)  # FFmpeg quotes the URL, secrets too
