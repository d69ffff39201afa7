"""A camera's effective settings: its registration's overrides on top of the ingest defaults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from bus.contracts import CameraSpec, RecordMode
from configs.settings import IngestConfig
from ingest.gating import GateName


class CameraPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    camera_id: str
    url: str
    sample_fps: float
    gate: GateName
    realtime: bool
    loop: bool
    keyframes_only: bool
    record: RecordMode = "off"

    @classmethod
    def from_spec(cls, spec: CameraSpec, cfg: IngestConfig, record: RecordMode = "off") -> CameraPlan:
        return cls(
            camera_id=spec.id,
            url=spec.url,
            sample_fps=spec.sample_fps if spec.sample_fps is not None else cfg.sample_fps,
            gate=spec.gate or cfg.gate,
            # Files replay as fast as possible unless asked to behave like a camera.
            realtime=bool(spec.realtime) if spec.realtime is not None else False,
            loop=spec.loop,
            keyframes_only=spec.keyframes_only if spec.keyframes_only is not None else cfg.keyframes_only,
            record=spec.record or record,  # `record` is the deployment's default (recording.mode)
        )
