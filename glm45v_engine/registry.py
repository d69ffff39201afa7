"""One registry keyed by the config's `type`; backends are imported only when chosen."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from configs.engine import EngineConfig
from glm45v_engine.types import EngineError, VisionEngine

# type -> "module:factory"; the factory takes the validated config section.
BACKENDS: dict[str, str] = {
    "baseline": "glm45v_engine.baseline:BaselineEngine",
    "openai": "glm45v_engine.openai_backend:OpenAIEngine",
    "transformers": "glm45v_engine.transformers_backend:TransformersEngine",
    "cassette": "glm45v_engine.cassette:CassetteEngine",
}

_ADAPTER: TypeAdapter[Any] = TypeAdapter(EngineConfig)


def parse_engine_config(config: Mapping[str, Any] | BaseModel) -> Any:
    if isinstance(config, BaseModel):
        config = config.model_dump()
    try:
        return _ADAPTER.validate_python(dict(config))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EngineError(f"bad engine config: {problems}") from None


def load_engine(config: Mapping[str, Any] | BaseModel) -> VisionEngine:
    """Build the engine the config's `type` names, e.g. `load_engine({"type": "baseline"})`."""
    cfg = parse_engine_config(config)
    target = BACKENDS[cfg.type]
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = " (install the extra: pip install 'sightline[gpu]')" if cfg.type == "transformers" else ""
        raise EngineError(f"engine {cfg.type!r} is not available: {exc}{hint}") from exc
    engine: VisionEngine = getattr(module, attr)(cfg)
    return engine
