"""Zones, lines and rules as a file or an API body: the issue's file shape works; bad input is
refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bus.rulespec import RuleSet, load_ruleset

ISSUE_FILE = """
zones: [{id: gate, camera: door, polygon: [[0.6,0.5],[0.8,0.5],[0.8,0.9],[0.6,0.9]]}]
lines: [{id: fence, camera: door, points: [[0.5,0.0],[0.5,1.0]], inside: [0.75,0.5]}]
rules:
  - {id: red-at-gate, query: red, when: {dwell: {zone: gate, seconds: 30}},
     schedule: {timezone: Europe/Berlin, from: "22:00", to: "06:00"}, cooldown_s: 60}
  - {id: fence-in, query: red, when: {cross: {line: fence, direction: in}}}
"""


def test_the_issue_file_shape_loads_and_round_trips_as_json() -> None:
    rs = load_ruleset(yaml.safe_load(ISSUE_FILE))
    assert [r.when.kind for r in rs.rules] == ["dwell", "cross"]
    assert rs.rules[0].schedule is not None and rs.rules[0].schedule.from_ == "22:00"
    again = RuleSet.model_validate_json(rs.model_dump_json(by_alias=True))
    assert again == rs
    assert '"from":"22:00"' in rs.model_dump_json(by_alias=True)


def _with(path: str, value: Any) -> dict[str, Any]:
    data = yaml.safe_load(ISSUE_FILE)
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = keys[-1]
    node[int(last) if last.isdigit() else last] = value
    return data  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("zones.0.polygon", [[0.1, 0.1], [0.2, 0.2]], "zones.0.polygon", "at least 3"),
        (
            "zones.0.polygon",
            [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]],
            "zones.0.polygon",
            "intersects itself",
        ),
        (
            "zones.0.polygon",
            [[0.1, 0.1], [1.5, 0.1], [0.5, 0.5]],
            "zones.0.polygon",
            "outside the frame",
        ),
        ("lines.0.points", [[0.5, 0.5], [0.5, 0.5]], "lines.0", "zero length"),
        ("lines.0.inside", [0.5, 0.3], "lines.0", "names no side"),
        ("rules.0.when.dwell.zone", "nowhere", "rules.0.when.dwell.zone", "unknown zone"),
        ("rules.1.when.cross.line", "nowhere", "rules.1.when.cross.line", "unknown line"),
        ("rules.0.schedule.timezone", "Mars/Olympus", "rules.0.schedule.timezone", "unknown time zone"),
        ("rules.0.schedule.to", "22:00", "rules.0.schedule", "equal"),
        ("rules.0.schedule.from", "25:00", "rules.0.schedule.from", "HH:MM"),
        ("rules.0.when.dwell.seconds", -1, "rules.0.when.dwell.seconds", "greater than or equal to 0"),
        ("rules.0.cooldown_s", -5, "rules.0.cooldown_s", "greater than or equal to 0"),
        (
            "rules.1.when",
            {"cross": {"line": "fence"}, "enter": {"zone": "gate"}},
            "rules.1.when",
            "exactly one",
        ),
        ("rules.1.query", None, "rules.1", "give one"),
        ("rules.1.id", "red-at-gate", "rules.1.id", "used twice"),
    ],
)
def test_bad_input_is_refused_naming_the_field(path: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_ruleset(_with(path, value))
    text = str(info.value)
    assert words in text, text
    locs = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert any(field in loc or field in e["msg"] for loc, e in zip(locs, info.value.errors(), strict=True)), (
        locs
    )
