"""`sightline schema export --asyncapi`: a document the AsyncAPI parser accepts, covering every topic."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import need

from bus.asyncapi import CHANNELS, SLOTS
from bus.contracts import ALL_CONTRACTS, FrameMeta, ObjectEvent
from bus.kafka import META_HEADER
from bus.topics import Topics
from configs import load_settings
from sightline.cli import main

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "scripts" / "asyncapi" / "validate.mjs"


def parse(path: Path) -> tuple[int, dict[str, Any]]:
    node = shutil.which("node")
    need(node is not None, "node is not installed (Debian nodejs)")
    need((VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").is_dir(), "run `make asyncapi-deps`")
    assert node is not None
    done = subprocess.run([node, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout or "{}")


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.setenv("SIGHTLINE_BUS__TOPIC_PREFIX", "acme.vision")
    monkeypatch.setenv("SIGHTLINE_BUS__PARTITIONS", "6")
    out = tmp_path / "asyncapi.json"
    assert main(["schema", "export", "--asyncapi", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    return out


def test_the_asyncapi_parser_accepts_the_document_and_sees_every_topic(exported: Path) -> None:
    code, result = parse(exported)
    assert code == 0 and result["valid"], result["diagnostics"]
    assert not [d for d in result["diagnostics"] if d["severity"] == "error"]
    bus = load_settings(None, bus={"topic_prefix": "acme.vision"}).bus
    declared = {*Topics.from_config(bus).all(), bus.topic(SLOTS)}
    assert set(result["channels"]) == declared  # every topic the code declares, nothing else


def test_the_parser_rejects_a_broken_document_so_the_pass_means_something(exported: Path) -> None:
    doc = json.loads(exported.read_text())
    del doc["components"]["schemas"]["ObjectEvent"]  # a dangling $ref
    broken = exported.with_name("broken.json")
    broken.write_text(json.dumps(doc))
    code, result = parse(broken)
    assert code == 1 and not result["valid"]
    assert any(d["severity"] == "error" for d in result["diagnostics"])


def test_payloads_are_the_contracts_and_frames_carry_their_metadata_header(exported: Path) -> None:
    doc = json.loads(exported.read_text())
    schemas, messages = doc["components"]["schemas"], doc["components"]["messages"]
    assert (
        schemas["ObjectEvent"]["properties"].keys()
        == ObjectEvent.model_json_schema(by_alias=True)["properties"].keys()
    )
    frames = doc["channels"]["frames"]
    assert frames["address"] == "acme.vision.frames" and frames["bindings"]["kafka"]["partitions"] == 6
    frame = messages["Frame"]
    assert frame["contentType"] == "image/jpeg"
    assert frame["headers"]["properties"][META_HEADER]["$ref"] == "#/components/schemas/FrameMeta"
    assert schemas["FrameMeta"]["properties"]["schema"]["default"] == FrameMeta.SCHEMA
    assert messages["ObjectEvent"]["bindings"]["kafka"]["key"]["description"] == "camera_id"
    documented = {m["title"] for m in messages.values()}
    assert {c.SCHEMA for c in ALL_CONTRACTS} - documented <= {"sightline.camera/1", "sightline.query/1"}
    # every channel a process sends on has a sender, and the operations point at real channels
    for op in doc["operations"].values():
        assert op["channel"]["$ref"].removeprefix("#/channels/") in doc["channels"]
    assert len(CHANNELS) == len(doc["channels"])
