"""Search over history: the embedder (chosen by `type`) and the ranking knobs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WordLlamaEmbedderConfig(_Section):
    """The offline default: the model ships inside the `wordllama` wheel, nothing is downloaded."""

    type: Literal["wordllama"] = "wordllama"
    dim: Literal[64, 128, 256] = Field(256, description="Matryoshka truncation of the 256-d model")


class OpenAIEmbedderConfig(_Section):
    """Any OpenAI-compatible `/v1/embeddings` endpoint (e.g. vLLM serving an embedding model)."""

    type: Literal["openai"] = "openai"
    base_url: str = Field(description="e.g. http://vllm-embed:8000/v1")
    model: str = Field(min_length=1)
    api_key: str | None = None
    timeout_s: float = Field(30.0, gt=0)
    batch: int = Field(64, ge=1, le=2048, description="texts per request")


EmbedderConfig = Annotated[WordLlamaEmbedderConfig | OpenAIEmbedderConfig, Field(discriminator="type")]


class SearchConfig(_Section):
    enabled: bool = Field(True, description="index tracks and summaries as they are stored")
    embedder: EmbedderConfig = WordLlamaEmbedderConfig()
    candidates: int = Field(200, ge=10, le=5000, description="hits taken from each leg before fusion")
    rrf_k: int = Field(60, ge=1, description="reciprocal-rank fusion constant")
    words_weight: float = Field(
        0.3,
        ge=0,
        le=10,
        description="weight of the words leg in the fusion (meaning has 1; docs/evaluation.md says why 0.3)",
    )
    min_similarity: float = Field(
        0.3, ge=-1, le=1, description="cosine below this is not a meaning match (the vector leg's cut-off)"
    )
