"""Drafting a rule from plain language: the prompt the engine gets, and reading what it answers.

The engine is asked for JSON only, naming the camera's zones and lines and the existing queries.
Its answer is never trusted: it is parsed, validated as a `RuleSpec`, and its references checked
against what exists. A draft is never saved here; the user saves it with the ordinary rule API.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from bus.contracts import QuerySpec
from bus.fields import ID_PATTERN
from bus.rulespec import LineSpec, RuleSpec, ZoneSpec

_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)
_ID = re.compile(ID_PATTERN)


@dataclass
class Draft:
    status: Literal["valid", "invalid", "refused"]
    rule: RuleSpec | None = None
    raw_rule: dict[str, Any] | None = None  # what the engine proposed, when it did not validate
    proposed_query: dict[str, str] | None = None  # a new grounding query the rule needs, if any
    explanation: str = ""
    problems: list[str] = field(default_factory=list)


def draft_prompt(
    text: str, camera_id: str, zones: list[ZoneSpec], lines: list[LineSpec], queries: list[QuerySpec]
) -> str:
    zone_lines = (
        "\n".join(f"- zone {z.id!r}" + (f" ({z.name})" if z.name else "") for z in zones) or "- (none)"
    )
    line_lines = (
        "\n".join(f"- line {ln.id!r}" + (f" ({ln.name})" if ln.name else "") for ln in lines) or "- (none)"
    )
    query_lines = (
        "\n".join(f"- query {q.id!r}: {q.text!r}" for q in queries if q.kind == "grounding") or "- (none)"
    )
    return (
        "Turn the user's request into one Sightline alert rule. Answer with one JSON object only, no prose:\n"
        '{"rule": {"id": "...", "query": "<query id>", "when": {<one condition>}, "schedule": {...}, '
        '"cooldown_s": 0, "severity": "info|warning|critical"}, '
        '"new_query": null or {"id": "...", "text": "<what to look for>"}, "explanation": "<one sentence>"}\n'
        "Conditions (exactly one): enter {zone}, leave {zone}, dwell {zone, seconds}, "
        "cross {line, direction: in|out|any}, count {zone, min, seconds}, absent {zone, seconds}.\n"
        'Schedule (optional): {"timezone": "<IANA name>", "from": "HH:MM", "to": "HH:MM", '
        '"weekdays": ["mon", ...]}.\n'
        f"Camera {camera_id!r} has:\n{zone_lines}\n{line_lines}\n"
        f"Existing queries:\n{query_lines}\n"
        "Use only these zone, line and query ids; if no query fits, propose one in new_query.\n"
        f"Request: {text.strip()}"
    )


def _json_object(text: str) -> dict[str, Any] | None:
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    for c in candidates:
        try:
            value = json.loads(c)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def read_draft(
    answer: str, camera_id: str, zones: list[ZoneSpec], lines: list[LineSpec], queries: list[QuerySpec]
) -> Draft:
    """The engine's answer → a checked draft: valid, invalid with the reasons, or refused (no rule in it)."""
    data = _json_object(answer)
    raw = data.get("rule") if data else None
    if not isinstance(raw, dict):
        return Draft("refused", problems=["the engine's answer held no rule object (JSON with a `rule` key)"])
    explanation = str(data.get("explanation") or "")[:1000] if data else ""
    new_query = data.get("new_query") if data else None
    proposed = None
    problems: list[str] = []
    if isinstance(new_query, dict) and new_query.get("id") and new_query.get("text"):
        qid, qtext = str(new_query["id"]), str(new_query["text"])[:1000]
        if _ID.match(qid):
            proposed = {"id": qid, "text": qtext}
        else:
            problems.append(f"new_query.id: {qid!r} is not a valid id")
    try:
        rule = RuleSpec.model_validate(raw)
    except ValidationError as exc:
        problems += [f"rule.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return Draft(
            "invalid", raw_rule=raw, proposed_query=proposed, explanation=explanation, problems=problems
        )
    kind = rule.when.kind
    zone_ids, line_ids = {z.id for z in zones}, {ln.id for ln in lines}
    if rule.when.zone is not None and rule.when.zone not in zone_ids:
        problems.append(f"rule.when.{kind}.zone: camera {camera_id!r} has no zone {rule.when.zone!r}")
    if rule.when.line is not None and rule.when.line not in line_ids:
        problems.append(f"rule.when.{kind}.line: camera {camera_id!r} has no line {rule.when.line!r}")
    known = {q.id for q in queries} | ({proposed["id"]} if proposed else set())
    if rule.query is not None and rule.query not in known:
        problems.append(f"rule.query: no query {rule.query!r} (and none proposed)")
    status: Literal["valid", "invalid"] = "invalid" if problems else "valid"
    return Draft(
        status, rule=rule, raw_rule=None, proposed_query=proposed, explanation=explanation, problems=problems
    )
