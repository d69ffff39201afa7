"""Reading the search index: a words leg, a meaning leg, fused by reciprocal rank.

- Words: FTS5 `MATCH` ranked by bm25 (SQLite) or `tsv @@ to_tsquery` ranked by `ts_rank_cd`
  (PostgreSQL). The user's text never reaches either query language: it is cut into word
  tokens (`\\w+`) that are OR-ed, each quoted, so `"`, `*`, `NEAR(`, `:` and `-` are plain text.
- Meaning: cosine similarity of the query's vector with each row's, above `min_similarity`
  (below it a row does not "match by meaning", so nonsense finds nothing). pgvector's HNSW
  index with iterative scans when it is there; otherwise `sinks.search_vectors.VectorCache`:
  an in-memory copy of the vectors, refreshed from `vseq` so only new or changed vectors are
  read, scored exactly with numpy or, at scale, through an ANN graph (usearch).
- Fusion: score = Σ weight/(rrf_k + rank) over the legs a row appears in (Cormack et al., 2009);
  meaning weighs 1, words `words_weight` times the share of the query's words that the index
  knows (coordination: a query half of whose words are in no row is half decided by words).
  `matched` says which legs found it. Filters apply inside both legs and again on the rows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy import Connection, text

from sinks.embedders import EmbedderError
from sinks.search_vectors import index_cache

if TYPE_CHECKING:
    from sinks.search import SearchIndex

log = logging.getLogger(__name__)
MAX_TOKENS = 32
# Words that say nothing about an event; FTS5 has no stop list, and "a" alone matches every row.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "by",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "some",
        "any",
        "who",
        "what",
        "when",
        "where",
        "which",
        "did",
        "do",
        "does",
        "has",
        "have",
        "had",
        "someone",
        "somebody",
        "something",
    ]
)
# Above this many matching rows, ranking every match by bm25 / ts_rank costs more than a query may
# (a word like "red" in a million descriptions): such words are left to the meaning leg (`_words`).
WORDS_RANK_MAX = 10_000
Matched = Literal["words", "meaning", "both"]


@dataclass(frozen=True)
class SearchFilter:
    camera_id: str | None = None
    query_id: str | None = None
    label: str | None = None
    kind: Literal["track", "summary"] | None = None
    since: float | None = None  # epoch seconds; a hit overlaps [since, until)
    until: float | None = None

    def sql(self) -> tuple[str, dict[str, Any]]:
        """A fixed WHERE fragment over alias `d`, with every value bound (never spliced)."""
        parts: list[str] = ["1 = 1"]
        params: dict[str, Any] = {}
        for col, value in (
            ("camera_id", self.camera_id),
            ("query_id", self.query_id),
            ("label", self.label),
            ("kind", self.kind),
        ):
            if value is not None:
                parts.append(f"d.{col} = :f_{col}")
                params[f"f_{col}"] = value
        if self.since is not None:
            parts.append("d.end_ts >= :f_since")
            params["f_since"] = self.since
        if self.until is not None:
            parts.append("d.start_ts < :f_until")
            params["f_until"] = self.until
        return " AND ".join(parts), params


@dataclass(frozen=True)
class Hit:
    kind: str
    id: str
    camera_id: str
    camera_name: str
    query_id: str
    label: str
    start: float
    end: float
    text: str
    description: str | None
    snapshot: str | None
    score: float
    matched: Matched
    similarity: float | None


def tokens(q: str) -> list[str]:
    return re.findall(r"\w+", q.lower())[:MAX_TOKENS]


def content_words(q: str) -> list[str]:
    """The query's words less the stop list (all of them when nothing else is left)."""
    words = tokens(q)
    kept = [w for w in words if w not in STOPWORDS]
    return kept or words


def _stem(w: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


def mentions(text_: str, words: list[str]) -> bool:
    """Whether the text has one of the words (crudely stemmed): `matched` for rows the words leg cut."""
    have = {_stem(w) for w in tokens(text_)}
    return any(_stem(w) in have for w in words)


Leg = Literal["words", "meaning"]


def search(
    index: SearchIndex,
    q: str,
    flt: SearchFilter,
    limit: int = 20,
    legs: tuple[Leg, ...] = ("words", "meaning"),
) -> list[Hit]:
    """Best first. `legs` leaves one leg out (the quality evaluation compares words, meaning, both)."""
    words = content_words(q) if "words" in legs else []
    if not words and not q.strip():
        return []
    k, cfg = index.cfg.candidates, index.cfg
    where, params = flt.sql()
    with index.engine.connect() as conn:
        meaning: dict[int, float] = {}
        qv = _query_vector(index, q) if index.vectors_ok and "meaning" in legs else None
        if qv is not None and np.any(qv):
            if index.vectors == "pgvector":
                meaning = _pg_meaning(conn, qv, where, params, k)
            else:
                meaning = index_cache(index).top(conn, qv, flt, k * 2)
            meaning = {s: v for s, v in meaning.items() if v >= cfg.min_similarity}
        counts = word_counts(conn, words) if words else {}
        word_hits = _words(conn, counts, where, params, k)
        # Coordination: the words leg speaks for the share of the query's words the index knows
        # ("wearing" and "luggage" are in no description, so "someone wearing red" is decided by
        # meaning more than by which rows are shortest among those that say "red").
        known = sum(n > 0 for n in counts.values())
        words_weight = cfg.words_weight * known / len(counts) if word_hits else 0.0  # distinct words
        fused: dict[int, float] = {}
        for leg, weight in ((word_hits, words_weight), ({s: -v for s, v in meaning.items()}, 1.0)):
            for seq, rank in tie_ranks(leg).items():
                fused[seq] = fused.get(seq, 0.0) + weight / (cfg.rrf_k + rank)
        # Only the best rows are read back (the filters again, in SQL): a cached vector's times may
        # lag, so a few candidates can drop out here and the next ones are read.
        order = sorted(fused, key=lambda seq: -fused[seq])
        rows: dict[int, Any] = {}
        lo, step = 0, max(limit * 2, 20)
        while lo < len(order) and len(rows) < limit:
            rows.update(_rows(conn, order[lo : lo + step], where, params))
            lo, step = lo + step, 1000
    in_words = set(word_hits)
    hits = []
    for seq, r in rows.items():
        if words and seq not in in_words and mentions(r.text, words):
            in_words.add(seq)  # a match the words leg did not rank (too common to rank them all)
        both = seq in in_words and seq in meaning
        matched: Matched = "both" if both else "words" if seq in in_words else "meaning"
        hits.append(
            Hit(
                kind=r.kind,
                id=r.doc_id,
                camera_id=r.camera_id,
                camera_name=r.camera_name,
                query_id=r.query_id,
                label=r.label,
                start=float(r.start_ts),
                end=float(r.end_ts),
                text=r.text,
                description=r.description,
                snapshot=r.snapshot,
                score=round(fused[seq], 6),
                matched=matched,
                similarity=round(float(meaning[seq]), 4) if seq in meaning else None,
            )
        )
    hits.sort(key=lambda h: (-h.score, -h.end, h.id))
    return hits[:limit]


def tie_ranks(scores: dict[int, float]) -> dict[int, int]:
    """Rank by score, lower is better; equal scores share a rank (1, 2, 2, 4), so a leg that cannot
    tell rows apart (every "red" row scores the same for the one word "red") favours none of them
    and the other leg decides."""
    ordered = sorted(scores.items(), key=lambda kv: kv[1])
    ranks: dict[int, int] = {}
    for i, (seq, score) in enumerate(ordered):
        ranks[seq] = ranks[ordered[i - 1][0]] if i and abs(score - ordered[i - 1][1]) < 1e-9 else i + 1
    return ranks


def _query_vector(index: SearchIndex, q: str) -> np.ndarray[Any, Any] | None:
    try:
        vec: np.ndarray[Any, Any] = index.embedder.embed([q])[0]
        return vec
    except EmbedderError as exc:  # the words leg still answers
        log.warning("search: the query could not be embedded, words only: %s", exc)
        return None


def _words(
    conn: Connection, counts: dict[str, int], where: str, params: dict[str, Any], k: int
) -> dict[int, float]:
    """seq → score, lower is better (bm25 is negative-better already; ts_rank_cd is negated).

    Up to `WORDS_RANK_MAX` matching rows are ranked whole. Beyond that, the words that are
    rare enough are ranked alone and the common ones are left to the meaning leg, the way
    bm25's inverse document frequency all but drops them anyway (a colour in a million
    descriptions); `mentions` still marks the hits that have them as matched by words.
    """
    present = [w for w, n in counts.items() if n > 0]
    if sum(counts.values()) <= WORDS_RANK_MAX:
        return _ranked(conn, present, where, params, k) if present else {}
    rare = [w for w in present if counts[w] <= WORDS_RANK_MAX]
    return _ranked(conn, rare, where, params, k) if rare else {}


def _match_sql(conn: Connection, words: list[str]) -> str:
    if conn.dialect.name == "sqlite":
        return " OR ".join(f'"{w}"' for w in words)  # \w+ tokens hold no quote: each is one FTS string
    return " | ".join(words)  # \w+ tokens: no tsquery operator can appear


def word_counts(conn: Connection, words: list[str]) -> dict[str, int]:
    """How many rows match each word, 0 for a word in no row, at most WORDS_RANK_MAX + 1.

    SQLite counts (capped; FTS5's doclists answer without touching the rows). PostgreSQL takes
    the planner's estimate from the column's statistics, since counting GIN matches visits every
    matching heap row (~100 ms for 10,000 of them here); a word the statistics do not list as
    common is then looked up in the GIN index, because the estimate cannot say "none": an unknown
    word is estimated at ~0.5 % of the rows, and a plain `LIMIT 1` probe of it is planned as a
    sequential scan of the whole table (0.3 s at 200k rows)."""
    if conn.dialect.name == "sqlite":
        sql = "SELECT count(*) FROM (SELECT 1 FROM search_fts WHERE search_fts MATCH :m LIMIT :cap)"
        return {w: int(conn.execute(text(sql), _capped(conn, w)).scalar() or 0) for w in words}
    size = conn.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('search_docs')")
    ).scalar()
    if size is not None and float(size) < 0:  # never analysed: no statistics, count (capped)
        sql = (
            "SELECT count(*) FROM (SELECT 1 FROM search_docs WHERE tsv @@ to_tsquery('english', :m) "
            "LIMIT :cap) s"
        )
        return {w: int(conn.execute(text(sql), _capped(conn, w)).scalar() or 0) for w in words}
    small = float(size or 0) <= WORDS_RANK_MAX  # rank every match: only whether a word is there
    counts = {w: 1 if small else min(_estimate(conn, w), WORDS_RANK_MAX + 1) for w in words}
    rare = [w for w, n in counts.items() if n <= WORDS_RANK_MAX]
    if rare:
        prev = conn.execute(text("SELECT current_setting('enable_seqscan')")).scalar()
        conn.execute(text("SELECT set_config('enable_seqscan', 'off', true)"))
        probe = "SELECT 1 FROM search_docs WHERE tsv @@ to_tsquery('english', :m) LIMIT 1"
        for w in rare:
            if conn.execute(text(probe), {"m": w}).first() is None:
                counts[w] = 0
        conn.execute(text("SELECT set_config('enable_seqscan', :v, true)"), {"v": prev})
    return counts


def _capped(conn: Connection, w: str) -> dict[str, Any]:
    return {"m": _match_sql(conn, [w]), "cap": WORDS_RANK_MAX + 1}


def _estimate(conn: Connection, w: str) -> int:
    plan = conn.execute(
        text("EXPLAIN (FORMAT JSON) SELECT 1 FROM search_docs WHERE tsv @@ to_tsquery('english', :m)"),
        {"m": w},
    ).scalar()
    return int(plan[0]["Plan"]["Plan Rows"]) if plan else 0


def _ranked(
    conn: Connection, words: list[str], where: str, params: dict[str, Any], k: int
) -> dict[int, float]:
    if conn.dialect.name == "sqlite":
        sql = (
            "SELECT d.seq, bm25(search_fts) AS r "
            "FROM search_fts JOIN search_docs d ON d.seq = search_fts.rowid "
            f"WHERE search_fts MATCH :m AND {where} ORDER BY r LIMIT :k"
        )
    else:
        sql = (
            "SELECT d.seq, -ts_rank_cd(d.tsv, query) AS r "
            "FROM search_docs d, to_tsquery('english', :m) query "
            f"WHERE d.tsv @@ query AND {where} ORDER BY r, d.seq DESC LIMIT :k"
        )
    m = _match_sql(conn, words)
    return {int(r.seq): float(r.r) for r in conn.execute(text(sql), {**params, "m": m, "k": k})}


def _pg_meaning(
    conn: Connection, qv: np.ndarray[Any, Any], where: str, params: dict[str, Any], k: int
) -> dict[int, float]:
    vec = "[" + ",".join(f"{x:.7g}" for x in qv) + "]"
    # SET LOCAL lasts for the read's transaction (the connection autobegins one and rolls it back).
    # Iterative scans keep going past filtered-out neighbours instead of returning too few rows.
    conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    conn.execute(text(f"SET LOCAL hnsw.ef_search = {min(1000, max(40, k))}"))
    rows = conn.execute(
        text(
            "SELECT d.seq, 1 - (d.embedding <=> CAST(:v AS vector)) AS sim FROM search_docs d "
            f"WHERE d.embedding IS NOT NULL AND {where} "
            "ORDER BY d.embedding <=> CAST(:v AS vector) LIMIT :k"
        ),
        {**params, "v": vec, "k": k},
    ).all()
    return {int(r.seq): float(r.sim) for r in rows}


def _rows(conn: Connection, seqs: list[int], where: str, params: dict[str, Any]) -> dict[int, Any]:
    if not seqs:
        return {}
    listed = ", ".join(str(int(s)) for s in seqs)  # integers from our own index, not user input
    sql = (
        "SELECT d.seq, d.doc_id, d.kind, d.camera_id, d.camera_name, d.query_id, d.label, d.start_ts, "
        "d.end_ts, d.text, d.description, d.snapshot FROM search_docs d "
        f"WHERE d.seq IN ({listed}) AND {where}"
    )
    return {int(r.seq): r for r in conn.execute(text(sql), params)}
