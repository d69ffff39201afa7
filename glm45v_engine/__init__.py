"""GLM-4.5V engine: one `VisionEngine` protocol, several backends chosen by config `type`.

from glm45v_engine import load_engine, Frame
engine = load_engine({"type": "openai", "base_url": url, "model": "glm-4.5v", "api_key": "x"})
[grounding] = await engine.ground([Frame(image=bgr)], "people in red")
"""

from glm45v_engine.registry import BACKENDS, load_engine, parse_engine_config
from glm45v_engine.types import (
    Answer,
    Box,
    Clip,
    EngineError,
    EngineStats,
    Frame,
    Grounding,
    SummaryResult,
    TimedSegment,
    UnsupportedQuery,
    Usage,
    VisionEngine,
)

__all__ = [
    "BACKENDS",
    "Answer",
    "Box",
    "Clip",
    "EngineError",
    "EngineStats",
    "Frame",
    "Grounding",
    "SummaryResult",
    "TimedSegment",
    "UnsupportedQuery",
    "Usage",
    "VisionEngine",
    "load_engine",
    "parse_engine_config",
]
