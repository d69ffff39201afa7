"""Text embedders for search: one small protocol, a registry keyed by the config's `type`.

Vectors come back L2-normalised float32 (rows of an `(n, dim)` array), so cosine similarity
is a dot product everywhere: numpy over SQLite blobs and pgvector's `<=>` alike. An empty or
all-unknown text embeds to zeros rather than NaN (it then matches nothing by meaning).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from configs.search import EmbedderConfig, OpenAIEmbedderConfig, WordLlamaEmbedderConfig

log = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]


class EmbedderError(RuntimeError):
    """The embedder could not produce vectors (server down, bad answer)."""


class Embedder(Protocol):
    name: str  # the backend: wordllama | openai
    model: str  # what the index records, with dim: a different one means `sightline search reindex`

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...

    def close(self) -> None: ...


def normalise(vectors: Any) -> Vectors:
    arr = np.nan_to_num(np.asarray(vectors, dtype=np.float32))
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: Vectors = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
    return out


class WordLlamaEmbedder:
    """A static word-embedding model (fast on CPU, good for short descriptions, weak on negation)."""

    name = "wordllama"

    def __init__(self, cfg: WordLlamaEmbedderConfig) -> None:
        import pathlib

        import wordllama

        # WordLlama.load() looks for the tokenizer in wordllama/tokenizer/ first and then downloads;
        # pointing cache_dir at the package finds the copy the wheel ships (no network).
        self._wl = wordllama.WordLlama.load(
            cache_dir=pathlib.Path(wordllama.__file__).parent,
            disable_download=True,
            trunc_dim=cfg.dim if cfg.dim != 256 else None,
        )
        self._dim = cfg.dim
        self.model = f"l2_supercat-{cfg.dim}"
        self._lock = threading.Lock()  # the tokenizer is not documented as thread-safe

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        with self._lock:
            raw = self._wl.embed([t or " " for t in texts], norm=False)
        return normalise(raw)

    def close(self) -> None:
        return None


class OpenAIEmbedder:
    """POST {base_url}/embeddings with `input` as a list; the dimension is what the server returns."""

    name = "openai"

    def __init__(self, cfg: OpenAIEmbedderConfig) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        self._client = httpx.Client(base_url=cfg.base_url.rstrip("/"), headers=headers, timeout=cfg.timeout_s)
        self._batch = cfg.batch
        self.model = cfg.model
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        import httpx

        rows: list[list[float]] = []
        for i in range(0, len(texts), self._batch):
            chunk = [t or " " for t in texts[i : i + self._batch]]
            try:
                r = self._client.post("/embeddings", json={"model": self.model, "input": chunk})
                r.raise_for_status()
                data = sorted(r.json()["data"], key=lambda d: int(d["index"]))
                got = [[float(x) for x in d["embedding"]] for d in data]
            except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
                raise EmbedderError(f"embeddings request failed: {type(exc).__name__}: {exc}") from exc
            if len(got) != len(chunk) or len({len(v) for v in got}) > 1:
                raise EmbedderError(f"embeddings answer has {len(got)} vectors for {len(chunk)} texts")
            rows += got
        if not rows:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        out = normalise(rows)
        if self._dim is None:
            self._dim = int(out.shape[1])
        elif out.shape[1] != self._dim:
            raise EmbedderError(f"the server changed dimension: {out.shape[1]} after {self._dim}")
        return out

    def close(self) -> None:
        self._client.close()


_REGISTRY: dict[str, Callable[[Any], Embedder]] = {
    "wordllama": WordLlamaEmbedder,
    "openai": OpenAIEmbedder,
}


def load_embedder(cfg: EmbedderConfig) -> Embedder:
    return _REGISTRY[cfg.type](cfg)
