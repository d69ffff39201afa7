"""The ranking helpers: shared ranks for ties, the stop list, the crude stem used for `matched`."""

from __future__ import annotations

from sinks.search_rank import content_words, mentions, tie_ranks


def test_equal_scores_share_a_rank() -> None:
    assert tie_ranks({1: -3.0, 2: -1.0, 3: -1.0, 4: 0.5}) == {1: 1, 2: 2, 3: 2, 4: 4}
    assert tie_ranks({}) == {}


def test_stop_words_leave_the_words_that_say_something() -> None:
    assert content_words("someone wearing a red jacket") == ["wearing", "red", "jacket"]
    assert content_words("the a of") == ["the", "a", "of"]  # nothing else left: keep them


def test_mentions_matches_word_forms() -> None:
    assert mentions("a man carrying parcels", ["parcel"])
    assert mentions("walked to the door", ["walking"])
    assert not mentions("a blue bag", ["red"])
