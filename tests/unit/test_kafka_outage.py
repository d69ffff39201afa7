"""A broker outage seen through kafka-python 3.0 must not end a process: poll and commit ride it out."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import CommitFailedError, KafkaConnectionError, TopicAuthorizationFailedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from bus.kafka import commit_offsets, poll


class FlakyConsumer:
    """Raises the given errors from poll/commit in turn, then behaves."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.committed: list[dict[TopicPartition, OffsetAndMetadata]] = []

    def _maybe_raise(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        self._maybe_raise()
        return {TopicPartition("t", 0): ["record"]}

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self._maybe_raise()
        self.committed.append(offsets)


def test_poll_answers_nothing_while_the_broker_is_down_and_records_once_it_is_back() -> None:
    # What kafka-python 3.0.12 raises out of poll() when its coordinator lookup meets a dead broker.
    c = FlakyConsumer(KafkaConnectionError("111 ECONNREFUSED"))
    assert poll(c, 10) == {}
    assert poll(c, 10) == {TopicPartition("t", 0): ["record"]}


def test_poll_still_raises_what_is_not_an_outage() -> None:
    with pytest.raises(CommitFailedError):
        poll(FlakyConsumer(CommitFailedError("rebalanced")), 10)


def test_a_commit_during_an_outage_is_skipped_not_fatal() -> None:
    offsets = {TopicPartition("t", 0): OffsetAndMetadata(5, "", -1)}
    c = FlakyConsumer(KafkaConnectionError("111 ECONNREFUSED"))
    assert commit_offsets(c, offsets) is False
    assert commit_offsets(c, offsets) is True
    assert c.committed == [offsets]
    # A commit refused because the group rebalanced (we were paused, or expelled) is not fatal
    # either: the partitions' new owner redoes the batch and outputs are idempotent (issue 21).
    assert commit_offsets(FlakyConsumer(CommitFailedError("rebalanced")), offsets) is False
    with pytest.raises(TopicAuthorizationFailedError):  # what is neither still ends the process
        commit_offsets(FlakyConsumer(TopicAuthorizationFailedError("denied")), offsets)
