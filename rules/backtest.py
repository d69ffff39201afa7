"""Trying a rule on recorded history: the live evaluator, fed stored events in their stored order.

Live, dry run and replay share `Evaluator`, so the same events in give the same alert ids out.
The caller streams the events (the API from the store, a test from a list); nothing here reads
a database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC

from bus.contracts import Alert, ObjectEvent
from bus.rulespec import LineSpec, RuleSpec, ZoneSpec
from rules.evaluator import Evaluator


@dataclass
class DryRun:
    alerts: list[Alert] = field(default_factory=list)
    per_day: Counter[str] = field(default_factory=Counter)  # UTC date → alerts
    events: int = 0
    disabled: dict[str, str] = field(default_factory=dict)


def dry_run(
    zones: Iterable[ZoneSpec],
    lines: Iterable[LineSpec],
    rules: Iterable[RuleSpec],
    events: Iterable[ObjectEvent],
    *,
    keep: int = 1000,
) -> DryRun:
    """Evaluate `rules` (saved or not) over `events` (each camera's in stored order).

    Every alert is counted per day; the first `keep` are returned whole."""
    ev = Evaluator(list(zones), list(lines), list(rules))
    out = DryRun(disabled=dict(ev.disabled))
    for e in events:
        out.events += 1
        for a in ev.feed(e):
            out.per_day[a.wall_ts.astimezone(UTC).date().isoformat()] += 1
            if len(out.alerts) < keep:
                out.alerts.append(a)
    return out
