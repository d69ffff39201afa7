"""Replay with rules: the replay's events through the live evaluator, alerts written next to them.

Live (`sightline rules`), dry run (`POST /api/rules/dry-run`) and replay all use
`rules.evaluator.Evaluator`, so the same events in give the same alert ids out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bus.contracts import Alert, ObjectEvent, Summary
from rules.book import RuleBook
from rules.evaluator import Evaluator


def with_alerts(
    records: Sequence[ObjectEvent | Summary], rules_file: str | Path
) -> list[ObjectEvent | Summary | Alert]:
    """The records in order, each event followed by the alerts it raised."""
    ev = Evaluator(*RuleBook.from_file(rules_file).specs())
    out: list[ObjectEvent | Summary | Alert] = []
    for r in records:
        out.append(r)
        if isinstance(r, ObjectEvent):
            out += ev.feed(r)
    return out


def jsonl(records: Sequence[ObjectEvent | Summary | Alert], keep_latency: bool = False) -> str:
    """One JSON object per line, tagged by `schema`; latencies zeroed as `ReplayResult.jsonl` does."""
    lines = []
    for r in records:
        if not keep_latency and not isinstance(r, Alert):
            r = r.model_copy(update={"latency_ms": 0.0})
        lines.append(r.model_dump_json(by_alias=True) + "\n")
    return "".join(lines)
