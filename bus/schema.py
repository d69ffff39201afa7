"""JSON Schema export of every contract (`sightline schema export DIR`)."""

from __future__ import annotations

import json
from pathlib import Path

from bus.contracts import ALL_CONTRACTS


def export_schemas(out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in ALL_CONTRACTS:
        schema = model.model_json_schema(by_alias=True)
        schema["$id"] = model.SCHEMA
        path = out / (model.SCHEMA.replace("sightline.", "").replace("/", ".v") + ".schema.json")
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
