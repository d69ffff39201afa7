"""Recording: the packets ingest already demuxes, remuxed (never decoded or re-encoded) into segments.

Segments are fragmented MP4 (`frag_keyframe+empty_moov`): the header is written first and every
GOP is flushed as a self-contained fragment, so a segment cut short by a crash, a kill or a
full disk is still playable up to its last whole fragment. A plain MP4 writes its index (moov)
only when closed, so the same accident would leave an unreadable file. Clips handed out by the
API are remuxed again into a plain MP4 with the index in front (faststart).

A segment starts on a keyframe once the current one is at least `segment_s` long, so every
segment decodes on its own. Nothing here may stop frames reaching the analyzer: any error
disables recording for this camera with a reason (shown in the camera's status) and the
camera carries on.
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error

from bus.contracts import RecordedSegment, stable_id

log = logging.getLogger(__name__)
RECORDINGS_DIR = "recordings"
FMP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
DISK_RECHECK_S = 5.0


def recordings_root(data_dir: str | Path) -> Path:
    return (Path(data_dir) / RECORDINGS_DIR).resolve()


class _Open:
    """The segment being written."""

    def __init__(self, path: Path, rel: str, seq: int, container: Any, stream: Any, base: int) -> None:
        self.path, self.rel, self.seq = path, rel, seq
        self.container, self.stream = container, stream
        self.base = base  # source dts of the first packet: becomes 0 in the file
        self.first_pts: int | None = None
        self.last_pts = 0
        self.last_dts = -1
        self.frames = 0
        self.source_start_s = 0.0
        self.min_offset = float("inf")  # least (arrival wall time - media time) over its packets


class SegmentRecorder:
    """One camera's recorder. `begin` per source session, `packet` per demuxed video packet, `end`."""

    def __init__(
        self,
        camera_id: str,
        root: Path,
        mode: Literal["continuous", "events"],
        *,
        segment_s: float = 10.0,
        min_free_bytes: int = 0,
        on_segment: Callable[[RecordedSegment], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.camera_id = camera_id
        self.dir = root / camera_id
        self.mode: Literal["continuous", "events"] = mode
        self.segment_s = segment_s
        self.min_free_bytes = min_free_bytes
        self.on_segment = on_segment
        self.clock = clock
        self.problem = ""  # why recording is stopped right now ("" = recording)
        self.segments = 0
        self.bytes = 0
        self.errors = 0
        self._session = ""
        self._stream: Any = None
        self._tb: Fraction | None = None
        self._seg: _Open | None = None
        self._seq = 0
        self._recheck_at = 0.0

    # -- session ----------------------------------------------------------------------------
    def begin(self, stream: Any, session: str) -> None:
        self.end()
        self._stream, self._session, self._seq = stream, session, 0
        self._tb = stream.time_base

    def end(self) -> None:
        """Close the open segment (source ended, reconnect, camera stopped)."""
        if self._seg is not None:
            self._close(complete=True)

    # -- packets ----------------------------------------------------------------------------
    def packet(self, pkt: Any) -> None:
        """Never raises: a recording failure must not cost the analyzer its frames."""
        try:
            self._packet(pkt)
        except Exception as exc:
            self.errors += 1
            self._fail(exc)

    def _packet(self, pkt: Any) -> None:
        if self._stream is None or self._tb is None or not pkt.size:
            return
        ts = pkt.dts if pkt.dts is not None else pkt.pts
        if ts is None:
            return  # no timing yet (some cameras' first packets): cannot be placed in a file
        src_s = float(ts * self._tb)
        seg = self._seg
        if pkt.is_keyframe and (seg is None or (ts - seg.base) * self._tb >= self.segment_s):
            if seg is not None:
                self._close(complete=True)
            seg = self._open(ts, src_s)
        if seg is None:
            return  # waiting for a keyframe (or recording stopped)
        dts = ts - seg.base
        pts = (pkt.pts - seg.base) if pkt.pts is not None else dts
        if dts <= seg.last_dts:
            dts = seg.last_dts + 1  # the muxer needs strictly rising dts; sources sometimes repeat one
        pts = max(pts, dts)
        pkt.dts, pkt.pts = dts, pts
        # Network jitter only ever delays a packet, so the least-delayed one places the segment in wall time.
        seg.min_offset = min(seg.min_offset, self.clock() - src_s)
        pkt.stream = seg.stream
        seg.container.mux(pkt)
        seg.last_dts = dts
        seg.last_pts = max(seg.last_pts, pts)
        seg.frames += 1

    def _open(self, ts: int, src_s: float) -> _Open | None:
        now = time.monotonic()
        if self.problem and now < self._recheck_at:
            return None
        free = self._free_bytes()
        if free is not None and free < self.min_free_bytes:
            self._stop_recording(f"disk full: {free // 1_000_000} MB free, below recording.min_free_bytes")
            return None
        if self.problem:
            log.info("camera %s: recording again (%s cleared)", self.camera_id, self.problem)
            self.problem = ""
        wall = self.clock()
        start = datetime.fromtimestamp(wall, UTC)
        name = f"{start:%Y%m%dT%H%M%S}_{int(wall * 1000) % 1000:03d}-{self._session[:8]}-{self._seq:05d}.mp4"
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / name
        container = av.open(str(path), "w", format="mp4", options=dict(FMP4))
        try:
            stream = container.add_stream_from_template(self._stream)
            stream.time_base = self._tb
        except Exception:
            container.close()
            raise
        seg = _Open(path, f"{self.camera_id}/{name}", self._seq, container, stream, ts)
        seg.source_start_s = src_s
        self._seg = seg
        self._seq += 1
        return seg

    def _close(self, *, complete: bool) -> None:
        seg, self._seg = self._seg, None
        if seg is None:
            return
        try:
            seg.container.close()
        except (av.error.FFmpegError, OSError) as exc:
            complete = False
            log.warning("camera %s: closing segment %s failed: %s", self.camera_id, seg.rel, exc)
        try:
            size = seg.path.stat().st_size
        except OSError:
            return
        if seg.frames == 0 or self._tb is None:
            seg.path.unlink(missing_ok=True)
            return
        # The last packet's display time plus one frame interval (estimated from the segment).
        step = seg.last_dts / max(1, seg.frames - 1) if seg.frames > 1 else 0
        duration = float((seg.last_pts + step) * self._tb)
        # Each segment is placed by its own packets, so a media clock drifting from the wall clock
        # never accumulates beyond one segment.
        start = datetime.fromtimestamp(seg.source_start_s + seg.min_offset, UTC)
        record = RecordedSegment(
            segment_id=stable_id("segment", self.camera_id, self._session, seg.seq),
            camera_id=self.camera_id,
            source_session=self._session,
            seq=seg.seq,
            path=seg.rel,
            mode=self.mode,
            start_ts=start,
            end_ts=start + timedelta(seconds=duration),
            source_start_s=round(seg.source_start_s, 6),
            duration_s=round(duration, 6),
            frames=seg.frames,
            bytes=size,
            complete=complete,
        )
        self.segments += 1
        self.bytes += size
        if self.on_segment is not None:
            try:
                self.on_segment(record)
            except Exception:
                log.warning("camera %s: segment record not published", self.camera_id, exc_info=True)

    def _fail(self, exc: Exception) -> None:
        full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        self._close(complete=False)
        reason = "disk full" if full else f"{type(exc).__name__}: {exc}"
        self._stop_recording(reason[:300])

    def _stop_recording(self, reason: str) -> None:
        if reason != self.problem:
            log.warning("camera %s: recording stopped: %s", self.camera_id, reason)
        self.problem = reason
        self._recheck_at = time.monotonic() + DISK_RECHECK_S

    def _free_bytes(self) -> int | None:
        if not self.min_free_bytes:
            return None
        probe = self.dir if self.dir.exists() else self.dir.parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return shutil.disk_usage(probe).free
        except OSError:
            return None
