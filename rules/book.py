"""The zones, lines and rules in force: a rules file (if any), then the control topic on top."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bus.contracts import ControlMessage
from bus.rulespec import LineSpec, RuleSet, RuleSpec, ZoneSpec, load_ruleset


@dataclass
class RuleBook:
    zones: dict[str, ZoneSpec] = field(default_factory=dict)
    lines: dict[str, LineSpec] = field(default_factory=dict)
    rules: dict[str, RuleSpec] = field(default_factory=dict)

    @classmethod
    def of(cls, rs: RuleSet) -> RuleBook:
        return cls({z.id: z for z in rs.zones}, {ln.id: ln for ln in rs.lines}, {r.id: r for r in rs.rules})

    @classmethod
    def from_file(cls, path: str | Path) -> RuleBook:
        """A YAML (or JSON) rules file; raises pydantic's ValidationError naming the bad field."""
        try:
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {exc}") from None
        return cls.of(load_ruleset(data))

    def apply(self, msg: ControlMessage) -> bool:
        """A zone/line/rule upsert or delete; True if it changed something."""
        table: dict[str, ZoneSpec] | dict[str, LineSpec] | dict[str, RuleSpec]
        if msg.kind == "zone":
            table = self.zones
        elif msg.kind == "line":
            table = self.lines
        elif msg.kind == "rule":
            table = self.rules
        else:
            return False
        if msg.op == "delete":
            return table.pop(msg.id, None) is not None
        body = msg.body
        if body is None or table.get(msg.id) == body:
            return False
        table[msg.id] = body  # type: ignore[assignment]
        return True

    def specs(self) -> tuple[list[ZoneSpec], list[LineSpec], list[RuleSpec]]:
        return (
            sorted(self.zones.values(), key=lambda z: z.id),
            sorted(self.lines.values(), key=lambda ln: ln.id),
            sorted(self.rules.values(), key=lambda r: r.id),
        )
