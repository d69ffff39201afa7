"""Configuration: the root `Settings` model, presets and loading."""

from configs.engine import (
    BaselineEngineConfig,
    CassetteEngineConfig,
    EngineConfig,
    OpenAIEngineConfig,
    Prices,
    TransformersEngineConfig,
)
from configs.search import OpenAIEmbedderConfig, SearchConfig, WordLlamaEmbedderConfig
from configs.settings import (
    PRESETS_DIR,
    AnalyzerConfig,
    ApiConfig,
    BusConfig,
    ConfigError,
    IngestConfig,
    Settings,
    StoreConfig,
    TrackingConfig,
    load_settings,
)

__all__ = [
    "PRESETS_DIR",
    "AnalyzerConfig",
    "ApiConfig",
    "BaselineEngineConfig",
    "BusConfig",
    "CassetteEngineConfig",
    "ConfigError",
    "EngineConfig",
    "IngestConfig",
    "OpenAIEmbedderConfig",
    "OpenAIEngineConfig",
    "Prices",
    "SearchConfig",
    "Settings",
    "StoreConfig",
    "TrackingConfig",
    "TransformersEngineConfig",
    "WordLlamaEmbedderConfig",
    "load_settings",
]
