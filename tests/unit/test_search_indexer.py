"""Indexing on its own thread (the sink's mode): what the store committed becomes searchable,
nothing is dropped when the indexer falls behind, and a failed batch is made good later."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.search import SearchConfig
from sightline.testing import messages as samples
from sinks.embedders import WordLlamaEmbedder
from sinks.eventwrite import track_key
from sinks.search import SearchIndex
from sinks.store import Store


def walker(tid: str, t0: float) -> list[Any]:
    return [
        samples.event("door", "people", tid, phase, int((t0 + dt) * 10), t0 + dt, label="person")
        for phase, dt in (("start", 0.0), ("end", 4.0))
    ]


@pytest.fixture
def store(tmp_path: Path, wordllama_embedder: WordLlamaEmbedder) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/s.db")
    s.search = SearchIndex(s.engine, wordllama_embedder, SearchConfig())
    s.index_in_background(depth=1)
    yield s
    s.close()


def indexed(store: Store) -> set[str]:
    assert store.search is not None
    return {h.id for h in store.search.search("person", limit=50)}


def test_what_was_written_is_searchable_after_a_flush(store: Store) -> None:
    store.write(walker("a", 0) + walker("b", 10))
    store.flush_index()
    assert indexed(store) == {track_key("door", "people", "a"), track_key("door", "people", "b")}
    assert store.indexer is not None and store.indexer.counters["rows_indexed"] == 2


def test_close_indexes_what_is_still_queued(tmp_path: Path, wordllama_embedder: WordLlamaEmbedder) -> None:
    s = Store(f"sqlite:///{tmp_path}/s.db")
    s.search = SearchIndex(s.engine, wordllama_embedder, SearchConfig())
    s.index_in_background()
    s.write(walker("a", 0))
    s.close()  # no flush: close drains
    again = Store(f"sqlite:///{tmp_path}/s.db")
    again.search = SearchIndex(again.engine, wordllama_embedder, SearchConfig())
    assert indexed(again) == {track_key("door", "people", "a")}
    assert again.search.backfill() == 0  # nothing was left for the start-up backfill
    again.close()


def test_a_slow_indexer_blocks_the_writer_and_drops_nothing(store: Store) -> None:
    assert store.search is not None and store.indexer is not None
    gate = threading.Event()
    real = store.search.index_messages

    def slow(messages: Any) -> int:
        gate.wait(10)
        return real(messages)

    store.search.index_messages = slow  # type: ignore[method-assign]
    writer = threading.Thread(target=lambda: [store.write(walker(f"t{i}", i * 10)) for i in range(4)])
    writer.start()
    writer.join(1.0)
    assert writer.is_alive(), "the writer went on although the queue (depth 1) was full"
    gate.set()
    writer.join(10)
    store.flush_index()
    assert len(indexed(store)) == 4
    assert store.indexer.counters["writer_blocked"] >= 1


def test_a_failed_batch_is_counted_and_backfilled_before_the_next(store: Store) -> None:
    assert store.search is not None and store.indexer is not None
    real = store.search.index_messages
    calls = {"n": 0}

    def flaky(messages: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return real(messages)

    store.search.index_messages = flaky  # type: ignore[method-assign]
    store.write(walker("lost", 0))
    store.flush_index()
    assert indexed(store) == set()
    assert store.indexer.counters["batches_failed"] == 1
    store.write(walker("next", 10))
    store.flush_index()
    assert indexed(store) == {track_key("door", "people", "lost"), track_key("door", "people", "next")}
