"""An approximate nearest-neighbour index for the SQLite store's vectors (optional: `usearch`).

At a million tracks, one exact product of the query with every stored vector reads ~1 GB per
query (~150 ms here). An HNSW graph (usearch, float16 inside, inner product on the unit
vectors the embedders return) answers the same top k in a few milliseconds. It is kept by the
reader (`sinks.search_rank.VectorCache`), keyed by the cache's row positions, updated as the
cache reads new or changed vectors, and saved next to the database file so a restarted reader
only adds what changed since. Without `usearch` installed, `make_ann` returns None and the
cache scores exactly with numpy, as before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)
CONNECTIVITY = 16  # HNSW "M"
EXPANSION_ADD = 64  # efConstruction
EXPANSION_SEARCH = 64  # ef, raised per query to at least the k asked for


class Ann:
    """A thin wrapper: keys are int64 positions, similarities are cosines (1 - usearch distance)."""

    def __init__(self, index: Any) -> None:
        self._index = index

    @property
    def size(self) -> int:
        return len(self._index)

    def add(self, keys: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if len(keys):
            self._index.add(keys, vectors)

    def remove(self, keys: npt.NDArray[np.int64]) -> None:
        if len(keys):
            self._index.remove(keys)

    def replace(self, keys: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if len(keys):
            self._index.remove(keys)
            self._index.add(keys, vectors)

    def search(
        self, qv: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        k = max(1, min(k, self.size))
        self._index.expansion_search = max(EXPANSION_SEARCH, k)
        m = self._index.search(qv, k)
        keys = np.asarray(m.keys, dtype=np.int64)
        sims = (1.0 - np.asarray(m.distances, dtype=np.float32)).astype(np.float32)
        return keys, sims

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)


def make_ann(dim: int, path: Path | None = None) -> Ann | None:
    """A new (or, from `path`, a saved) index; None when usearch is not installed or the file is unusable."""
    try:
        from usearch.index import Index
    except ImportError:
        return None
    index = Index(
        ndim=dim,
        metric="ip",
        dtype="f16",
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )
    if path is not None:
        try:
            index.load(str(path))
        except Exception as exc:  # a torn or foreign file: start over, the cache rebuilds it
            log.warning("search: the saved vector index %s is unusable (%s); rebuilding", path, exc)
            return None
        if index.ndim != dim:
            return None
    return Ann(index)
