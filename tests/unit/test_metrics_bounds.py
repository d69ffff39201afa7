"""The label bounds that keep per-camera and per-query series finite, and the lag gauge's bookkeeping."""

from __future__ import annotations

from lifecycle import metrics
from lifecycle.metrics import OTHER, BoundedLabel


def test_a_bounded_label_keeps_the_first_values_and_folds_later_ones_into_other() -> None:
    name = "sightline_metrics_labels_overflow_total"
    before = metrics.REGISTRY.get_sample_value(name, {"label": "t1"}) or 0
    label = BoundedLabel("t1", 2)
    assert [label(v) for v in ("a", "b", "c", "a", "d", "b")] == ["a", "b", OTHER, "a", OTHER, "b"]
    after = metrics.REGISTRY.get_sample_value(name, {"label": "t1"})
    assert after == before + 2


def test_consumer_lag_follows_the_partitions_the_consumer_holds_now() -> None:
    def lag(topic: str, p: int) -> float | None:
        return metrics.REGISTRY.get_sample_value(
            "sightline_consumer_lag_messages", {"group": "g-test", "topic": topic, "partition": str(p)}
        )

    metrics.set_consumer_lag("g-test", {("f", 0): 5, ("f", 1): 0})
    assert (lag("f", 0), lag("f", 1)) == (5, 0)
    metrics.set_consumer_lag("g-test", {("f", 1): 3})  # partition 0 went to another worker
    assert (lag("f", 0), lag("f", 1)) == (None, 3)
