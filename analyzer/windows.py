"""Summary windows: frames of one (camera, summary query) collected into clips by media time."""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.contracts import FrameMeta

MAX_CLIP_FRAMES = 32  # a clip beyond this is thinned evenly; GLM-4.5V video input is ~2 fps anyway


@dataclass
class OpenWindow:
    start_s: float
    end_s: float
    frames: list[tuple[FrameMeta, bytes, int]] = field(default_factory=list)  # meta, jpeg, source offset

    @property
    def first_offset(self) -> int | None:
        return self.frames[0][2] if self.frames else None

    def clip_frames(self) -> list[tuple[FrameMeta, bytes]]:
        frames = [(m, j) for m, j, _ in self.frames]
        if len(frames) <= MAX_CLIP_FRAMES:
            return frames
        step = (len(frames) - 1) / (MAX_CLIP_FRAMES - 1)
        return [frames[round(i * step)] for i in range(MAX_CLIP_FRAMES)]


@dataclass
class Windower:
    """Hopping windows of `window_s` every `stride_s`; a shorter stride overlaps, a longer one skips."""

    window_s: float
    stride_s: float
    session: str = ""
    windows: list[OpenWindow] = field(default_factory=list)
    next_start: float | None = None
    last_frame_id: int = -1

    def add(self, meta: FrameMeta, jpeg: bytes, offset: int = -1) -> list[OpenWindow]:
        """Add a frame; return the windows it closed (their end is at or before this frame).

        A frame delivered again (the worker retries from an earlier offset) changes nothing."""
        closed: list[OpenWindow] = []
        if meta.source_session != self.session:
            closed = self.flush()
            self.session, self.next_start, self.last_frame_id = meta.source_session, None, -1
        elif meta.frame_id <= self.last_frame_id:
            return []
        self.last_frame_id = meta.frame_id
        if self.next_start is None:
            self.next_start = meta.pts_s
        while self.next_start <= meta.pts_s:
            self.windows.append(OpenWindow(self.next_start, self.next_start + self.window_s))
            self.next_start += self.stride_s
        done = [w for w in self.windows if w.end_s <= meta.pts_s]
        self.windows = [w for w in self.windows if w.end_s > meta.pts_s]
        for w in self.windows:
            if w.start_s <= meta.pts_s:
                w.frames.append((meta, jpeg, offset))
        return closed + [w for w in done if w.frames]

    def flush(self) -> list[OpenWindow]:
        """Close every open window (end of stream): a partial window still gets its summary."""
        out = [w for w in self.windows if w.frames]
        self.windows = []
        return out

    def oldest_offset(self) -> int | None:
        offsets = [w.first_offset for w in self.windows if w.first_offset is not None and w.first_offset >= 0]
        return min(offsets) if offsets else None
