"""Indexing on a thread of its own: the search index keeps up with the store without slowing it.

`Store.write` commits a batch and returns; the batch's new events and summaries wait here and a
worker thread embeds and indexes them while the sink writes the next batch. The tokenizer,
numpy and SQLite release the GIL, so some of the indexing overlaps the event writes: ~5 % more
tracks/s at 200k in `sightline bench search` (both sides hold the GIL for most of their work).
What it buys beyond that: a slow embedder (`openai` over a network) delays the index, not the
event writes, by up to `depth` batches.

The queue is bounded (`depth` batches) and a full queue blocks the writer: the drop policy is
"block", never drop, because a dropped batch would stay unsearchable until the next start-up's
backfill. A batch that fails to index (database gone, embedder down) is logged and counted,
and the worker backfills before its next batch, so the gap closes without a restart.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sinks.search import SearchIndex

log = logging.getLogger(__name__)


class BackgroundIndexer:
    """One worker thread; `flush` waits until everything submitted is indexed, `close` drains and stops."""

    def __init__(self, index: SearchIndex, depth: int = 2) -> None:
        self.index = index
        self._queue: queue.Queue[list[object] | None] = queue.Queue(maxsize=depth)  # None: stop
        self._behind = False  # a batch failed: backfill before the next one
        self.counters = {"batches_indexed": 0, "rows_indexed": 0, "batches_failed": 0, "writer_blocked": 0}
        self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)
        self._thread.start()

    def submit(self, messages: Sequence[object]) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the search indexer is stopped")
        if self._queue.full():
            self.counters["writer_blocked"] += 1
        self._queue.put(list(messages))

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._index(item)
            finally:
                self._queue.task_done()

    def _index(self, messages: list[object]) -> None:
        try:
            if self._behind:
                self.index.backfill()
                self._behind = False
            self.counters["rows_indexed"] += self.index.index_messages(messages)
            self.counters["batches_indexed"] += 1
        except Exception:  # the rows are stored; only their index is late (see the module doc)
            self._behind = True
            self.counters["batches_failed"] += 1
            log.exception("search: indexing a batch of %d messages failed; backfilling later", len(messages))
