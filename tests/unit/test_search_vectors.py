"""The SQLite reader's vectors: the ANN graph (usearch) at scale, its copy saved next to the
database file, times that move, and rows retention deletes. The thresholds are lowered so a
handful of tracks take the paths a million would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sightline.testing import messages as samples
from sinks import search_vectors
from sinks.retention import prune_rows
from sinks.search import SearchIndex
from sinks.search_rank import SearchFilter
from sinks.search_vectors import index_cache
from sinks.store import Store
from tests.unit.test_search_store import CFG, described, history, ids, key, track


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every store is 'large': the graph answers whatever the filters keep."""
    pytest.importorskip("usearch")
    monkeypatch.setattr(search_vectors, "ANN_MIN_ROWS", 1)
    monkeypatch.setattr(search_vectors, "EXACT_ROWS", 0)
    monkeypatch.setattr(search_vectors, "BACKGROUND_ROWS", 10**9)


@pytest.fixture
def store(tmp_path: Path, wordllama_embedder: Any) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/search.db")
    s.search = SearchIndex(s.engine, wordllama_embedder, CFG)
    yield s
    s.close()


def test_the_graph_answers_like_the_exact_scan(store: Store, graph: None) -> None:
    history(store)
    idx = store.search
    assert idx is not None
    hits = idx.search("someone wearing red", legs=("meaning",))
    assert hits[0].id == key("walker")
    assert index_cache(idx).ann is not None and index_cache(idx).ann_n == 5
    gate = idx.search("an animal", SearchFilter(camera_id="gate"), legs=("meaning",))
    assert ids(gate)[0] == key("dog", "gate", "animals")
    assert {h.camera_id for h in gate} == {"gate"}


def test_the_vectors_are_saved_next_to_the_database_and_read_back(
    tmp_path: Path, store: Store, graph: None, monkeypatch: pytest.MonkeyPatch, wordllama_embedder: Any
) -> None:
    monkeypatch.setattr(search_vectors, "SAVE_EVERY", 1)
    history(store)
    assert store.search is not None
    first = ids(store.search.search("someone wearing red"))
    assert (tmp_path / "search.db.search-vectors.npz").exists()
    assert (tmp_path / "search.db.search-vectors.usearch").exists()

    monkeypatch.setattr(search_vectors, "SAVE_EVERY", 10**9)
    again = SearchIndex(store.engine, wordllama_embedder, CFG)  # a restarted reader
    assert ids(again.search("someone wearing red")) == first
    cache = index_cache(again)
    assert cache.n == 5 and cache.unsaved == 0  # read from the files, not from the rows
    assert cache.ann is not None and cache.ann.size == 5


def test_a_saved_copy_of_another_store_is_ignored(
    tmp_path: Path, store: Store, graph: None, monkeypatch: pytest.MonkeyPatch, wordllama_embedder: Any
) -> None:
    monkeypatch.setattr(search_vectors, "SAVE_EVERY", 1)
    history(store)
    assert store.search is not None
    store.search.search("red")
    other = Store(f"sqlite:///{tmp_path}/other.db")
    other.write(track("yard", "people", "cyclist", "person", 0, "a cyclist in a green coat"))
    for suffix in (".npz", ".usearch"):
        (tmp_path / f"search.db.search-vectors{suffix}").rename(tmp_path / f"other.db.search-vectors{suffix}")
    index = SearchIndex(other.engine, wordllama_embedder, CFG)
    assert index.backfill() == 1
    hits = index.search("someone on a bike")
    assert ids(hits) == [key("cyclist", "yard")]
    other.close()


def test_a_track_whose_end_moved_is_found_in_its_new_window(store: Store) -> None:
    assert store.search is not None
    start, _ = track("door", "people", "walker", "person", 0, "a man in a red hooded jacket")
    store.write([start])
    t0 = samples.T0.timestamp()
    later = SearchFilter(since=t0 + 100, until=t0 + 200)
    assert store.search.search("someone wearing red", later, legs=("meaning",)) == []
    seen = samples.event("door", "people", "walker", "update", 1500, 150.0, label="person")
    store.write([described(seen, "a man in a red hooded jacket")])  # same text: same vector, new end
    hits = store.search.search("someone wearing red", later, legs=("meaning",))
    assert ids(hits) == [key("walker")]


def test_rows_retention_deleted_leave_the_graph(store: Store, graph: None) -> None:
    history(store)
    assert store.search is not None
    assert ids(store.search.search("someone wearing red"))[0] == key("walker")
    cutoff = (samples.T0 + timedelta(seconds=15)).timestamp()
    assert prune_rows(store, cutoff)["search_docs"] == 2
    assert key("walker") not in ids(store.search.search("someone wearing red", legs=("meaning",)))
    assert ids(store.search.search("a white van", legs=("meaning",)))[0] == key("van", "gate", "vehicles")
    cache = index_cache(store.search)
    assert cache.dead == 2 and cache.ann is not None and cache.ann.size == 3


def test_a_large_graph_is_built_in_the_background_and_then_used(
    tmp_path: Path, store: Store, graph: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_vectors, "BACKGROUND_ROWS", 0)
    history(store)
    assert store.search is not None
    first = ids(store.search.search("someone wearing red", legs=("meaning",)))  # exact meanwhile
    assert first[0] == key("walker")
    cache = index_cache(store.search)
    cache.wait_for_graph(60)
    assert cache.builder is None and cache.ann is not None and cache.ann_n == 5
    assert (tmp_path / "search.db.search-vectors.usearch").exists()  # saved once complete
    assert ids(store.search.search("someone wearing red", legs=("meaning",))) == first
