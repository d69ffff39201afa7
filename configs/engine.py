"""Engine sections of the config: one model per backend, joined by `type`.

They live here (not in glm45v_engine) so the root settings model can validate
a whole file without importing any backend.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prices(_Section):
    """Price per million tokens; defaults are Z.AI's list price for glm-4.5v."""

    currency: str = "CNY"
    input_per_m: float = Field(0.6, ge=0)
    output_per_m: float = Field(1.8, ge=0)


class BaselineEngineConfig(_Section):
    """CPU OpenCV HOG people detector + colour filter. Not a VLM; says so."""

    type: Literal["baseline"] = "baseline"
    hit_threshold: float = 0.0
    win_stride: int = Field(8, ge=4, le=32)
    scale: float = Field(1.05, gt=1.0, le=2.0)
    upscale: float = Field(
        1.5, ge=1.0, le=4.0, description="HOG finds people >= 96 px tall; upscale to see smaller"
    )
    min_width: int = Field(300, ge=64, description="frames narrower than this are upscaled further")
    trim_x: float = Field(
        0.25, ge=0, lt=0.5, description="share of HOG's window width that is margin, per side"
    )
    trim_y: float = Field(
        0.125, ge=0, lt=0.5, description="share of HOG's window height that is margin, per side"
    )


class OpenAIEngineConfig(_Section):
    """Any OpenAI-compatible GLM-4.5V server: vLLM, SGLang or Z.AI."""

    type: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8001/v1"
    model: str = "zai-org/GLM-4.5V-FP8"
    api_key: str | None = Field(None, description="or env ZAI_API_KEY / OPENAI_API_KEY")
    flavor: Literal["vllm", "sglang", "zai"] = "vllm"
    thinking: bool = False
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0)
    max_concurrency: int = Field(8, ge=1, le=256)
    max_tokens: int = Field(1024, ge=16)
    temperature: float = Field(0.0, ge=0, le=2)
    max_image_side: int = Field(1280, ge=64, description="frames are downscaled to this before sending")
    video_mode: Literal["auto", "video_url", "frames"] = "auto"
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)
    prices: Prices = Prices()
    stream: bool = Field(
        False, description="use SSE streaming responses (usage requested via stream_options)"
    )
    max_clip_frames: int = Field(16, ge=1, le=256, description="clips sent as frames are subsampled to this")
    jpeg_quality: int = Field(90, ge=30, le=100)


class TransformersEngineConfig(_Section):
    """Local GLM-4.5V through transformers (GPU hosts; tests use a tiny random checkpoint on CPU)."""

    type: Literal["transformers"] = "transformers"
    model: str = "zai-org/GLM-4.5V"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device_map: str = "auto"
    max_new_tokens: int = Field(512, ge=1)
    max_batch: int = Field(4, ge=1)
    thinking: bool = False
    max_image_side: int = Field(1280, ge=28, description="frames are downscaled to this before preprocessing")
    max_clip_frames: int = Field(16, ge=1, le=256)
    prices: Prices = Prices(input_per_m=0.0, output_per_m=0.0)


class CassetteEngineConfig(_Section):
    """Record another engine's raw responses, or replay them byte for byte."""

    type: Literal["cassette"] = "cassette"
    path: str
    mode: Literal["record", "replay"] = "replay"
    inner: InnerEngineConfig | None = None


InnerEngineConfig = Annotated[
    BaselineEngineConfig | OpenAIEngineConfig | TransformersEngineConfig,
    Field(discriminator="type"),
]
EngineConfig = Annotated[
    BaselineEngineConfig | OpenAIEngineConfig | TransformersEngineConfig | CassetteEngineConfig,
    Field(discriminator="type"),
]
CassetteEngineConfig.model_rebuild()
