"""Search over history in the store: indexing as events are stored, hybrid ranking, filters,
bad input, backfill and reindex — on SQLite (FTS5 + numpy) and PostgreSQL (tsvector + pgvector)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from bus.contracts import CameraSpec, ObjectEvent
from configs.search import SearchConfig, WordLlamaEmbedderConfig
from sightline.testing import messages as samples
from sinks import tables as t
from sinks.embedders import WordLlamaEmbedder
from sinks.retention import prune_rows
from sinks.search import SearchIndex
from sinks.search_rank import SearchFilter
from sinks.store import Store

CFG = SearchConfig()


def described(ev: ObjectEvent, description: str | None) -> ObjectEvent:
    return ev.model_copy(update={"description": description, "description_engine": "glm-4.5v"})


def track(
    camera: str, query: str, tid: str, label: str, t0: float, description: str | None = None
) -> list[ObjectEvent]:
    out = []
    for phase, dt, snap in (("start", 0.0, f"snapshots/{tid}-s.jpg"), ("end", 4.0, None)):
        ev = samples.event(
            camera, query, tid, phase, int((t0 + dt) * 10), t0 + dt, label=label, snapshot=snap
        )
        out.append(described(ev, description))
    return out


@pytest.fixture
def store(search_store_url: str, wordllama_embedder: WordLlamaEmbedder) -> Iterator[Store]:
    s = Store(search_store_url)
    s.search = SearchIndex(s.engine, wordllama_embedder, CFG)
    yield s
    s.close()


def history(store: Store) -> None:
    store.put_camera(CameraSpec(id="door", url="rtsp://h/door", name="Front door"))
    store.write(
        [
            *track("door", "people", "walker", "person", 0, "a man in a red hooded jacket carrying a parcel"),
            *track("door", "objects", "box", "object", 10, "a blue plastic box on the floor"),
            *track("gate", "vehicles", "van", "car", 20, "a white delivery van parked at the gate"),
            *track("gate", "animals", "dog", "dog", 30, "a small brown dog running"),
            samples.summary("gate", "what", 100.0),
        ]
    )


def ids(hits: list[Any]) -> list[str]:
    return [h.id for h in hits]


def key(tid: str, camera: str = "door", query: str = "people") -> str:
    from sinks.eventwrite import track_key

    return track_key(camera, query, tid)


def test_stored_tracks_are_found_by_meaning_first(store: Store) -> None:
    history(store)
    assert store.search is not None
    hits = store.search.search("someone wearing red")
    assert hits[0].id == key("walker")
    assert hits[0].kind == "track" and hits[0].camera_name == "Front door"
    assert hits[0].snapshot == "snapshots/walker-s.jpg"
    assert hits[0].matched in ("meaning", "both")
    assert store.search.search("vehicle")[0].id == key("van", "gate", "vehicles")
    assert store.search.search("animal")[0].id == key("dog", "gate", "animals")


def test_words_and_meaning_are_reported_and_fused(store: Store) -> None:
    history(store)
    assert store.search is not None
    hits = store.search.search("parcel")
    assert hits[0].id == key("walker") and hits[0].matched == "both"
    assert [h for h in hits if h.matched == "words"] == [] or hits[0].score > hits[-1].score
    nonsense = store.search.search("xqzvbw")
    assert nonsense == []  # no word, no meaning above the cut-off: nothing, not everything


def test_filters_camera_kind_time_label(store: Store) -> None:
    history(store)
    idx = store.search
    assert idx is not None
    assert set(ids(idx.search("person car dog box", SearchFilter(camera_id="gate", kind="track")))) == {
        key("van", "gate", "vehicles"),
        key("dog", "gate", "animals"),
    }
    summaries = idx.search("person walks", SearchFilter(kind="summary"))
    assert [h.kind for h in summaries] == ["summary"]
    t0 = samples.T0.timestamp()
    in_window = idx.search("person object car dog", SearchFilter(since=t0 + 9, until=t0 + 21))
    assert set(ids(in_window)) == {key("box", query="objects"), key("van", "gate", "vehicles")}
    assert ids(idx.search("dog", SearchFilter(label="dog"))) == [key("dog", "gate", "animals")]
    assert idx.search("dog", SearchFilter(camera_id="nowhere")) == []


@pytest.mark.parametrize(
    "q",
    [
        '"',
        '"red',
        "red*",
        "NEAR(red person)",
        "text:red",
        "-red",
        "red AND OR NOT",
        "🙂🔴",
        "a" * 10_000,
        " ",
        "",
    ],
)
def test_query_syntax_is_plain_text(store: Store, q: str) -> None:
    history(store)
    assert store.search is not None
    hits = store.search.search(q)  # never raises: the text never reaches FTS5 or tsquery syntax
    assert all(h.kind in ("track", "summary") for h in hits)
    if q in ('"red', "red*", "NEAR(red person)", "text:red", "-red"):
        assert hits and hits[0].id == key("walker")


def test_a_new_description_replaces_the_indexed_words(store: Store) -> None:
    history(store)
    idx = store.search
    assert idx is not None
    later = samples.event("door", "people", "walker", "update", 25, 2.5, label="person")
    store.write([described(later, "a woman with a green umbrella")])
    assert ids(idx.search("umbrella"))[0] == key("walker")
    assert key("walker") not in ids(idx.search("parcel"))
    with store.engine.connect() as conn:
        n = conn.execute(select(t.search_docs.c.seq).where(t.search_docs.c.doc_id == key("walker"))).all()
    assert len(n) == 1  # updated in place, never duplicated


def test_backfill_indexes_an_existing_store_once(search_store_url: str, wordllama_embedder: Any) -> None:
    plain = Store(search_store_url)  # a store written before search existed
    plain.write([*track("door", "people", "walker", "person", 0, "a man in a red jacket"), samples.summary()])
    index = SearchIndex(plain.engine, wordllama_embedder, CFG)
    assert index.search("red jacket") == []
    assert index.backfill() == 2
    assert index.backfill() == 0  # idempotent
    assert ids(index.search("someone wearing red"))[0] == key("walker")
    plain.close()


def test_another_embedder_never_mixes_vectors_until_reindex(store: Store) -> None:
    history(store)
    small = WordLlamaEmbedder(WordLlamaEmbedderConfig(dim=64))
    other = SearchIndex(store.engine, small, CFG)
    assert not other.vectors_ok  # built by the 256-d model
    assert other.search("parcel")[0].matched == "words"  # words still work, meaning is off
    assert other.reindex() == 5
    assert other.vectors_ok
    assert ids(other.search("someone wearing red"))[0] == key("walker")
    assert other.search("someone wearing red")[0].matched in ("meaning", "both")
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            dims = conn.execute(text("SELECT vector_dims(embedding) FROM search_docs LIMIT 1")).scalar()
        assert dims == 64


def test_retention_removes_what_it_indexed(store: Store) -> None:
    history(store)
    assert store.search is not None
    cutoff = (samples.T0 + timedelta(seconds=15)).timestamp()
    assert prune_rows(store, cutoff)["search_docs"] == 2  # walker and box ended before 15 s
    assert key("walker") not in ids(store.search.search("someone wearing red"))


@pytest.mark.parametrize("search_store_url", ["postgresql"], indirect=True)
def test_postgresql_uses_pgvector_and_hnsw(store: Store) -> None:
    assert store.search is not None and store.search.vectors == "pgvector"
    history(store)
    with store.engine.connect() as conn:
        indexes = set(
            conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'search_docs'")).scalars()
        )
        filled = conn.execute(text("SELECT count(*) FROM search_docs WHERE embedding IS NOT NULL")).scalar()
    assert {"ix_search_docs_tsv", "ix_search_docs_embedding"} <= indexes
    assert filled == 5


def test_words_too_common_to_rank_are_left_to_meaning(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """At scale (here: more than one matching row) a common word is not ranked; a rare one still is."""
    from sinks import search_rank

    history(store)
    assert store.search is not None
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE search_docs"))  # the planner's estimate decides there
    monkeypatch.setattr(search_rank, "WORDS_RANK_MAX", 1)
    hits = store.search.search("door parcel")  # "door": walker and box (Front door); "parcel": walker
    assert hits[0].id == key("walker")
    assert hits[0].matched in ("words", "both")
    with store.engine.connect() as conn:
        assert search_rank.word_counts(conn, ["door"])["door"] > 1


def test_words_the_index_does_not_know_weaken_the_words_leg(store: Store) -> None:
    """Coordination: the words leg speaks for the share of the query's words found in the index."""
    from sinks import search_rank

    history(store)
    assert store.search is not None
    whole = store.search.search("parcel", legs=("words",))
    half = store.search.search("parcel xqzvbw", legs=("words",))  # one word of two is in no row
    assert ids(whole) == ids(half) == [key("walker")]
    assert half[0].score == pytest.approx(whole[0].score / 2, rel=1e-3)
    with store.engine.connect() as conn:
        counts = search_rank.word_counts(conn, ["parcel", "xqzvbw", "van"])
    assert counts["xqzvbw"] == 0 and counts["parcel"] > 0 and counts["van"] > 0
