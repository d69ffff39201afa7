"""An AsyncAPI 3 document for every topic (`sightline schema export --asyncapi FILE`).

Channels are the topics of `bus.topics.Topics` (plus ingest's slots topic), each with its key,
its messages and the payload schemas generated from the contracts in `bus.contracts`, and the
frames' headers. Operations say which process sends and which receives each channel. A topic
added to `Topics` without an entry in `CHANNELS` makes `document()` fail, so the document
cannot silently fall behind the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bus.contracts import (
    ALL_CONTRACTS,
    Alert,
    ControlMessage,
    DeadLetter,
    EndOfStream,
    Envelope,
    FrameMeta,
    ObjectEvent,
    RecordedSegment,
    StatusUpdate,
    Summary,
)
from bus.kafka import META_HEADER, SCHEMA_HEADER
from bus.topics import Topics
from configs.settings import BusConfig

REF = "#/components/schemas/{model}"
KAFKA_BINDING = "0.5.0"
SLOTS = "ingest_slots"  # ingest.ownership's group topic: declared there, documented here


@dataclass(frozen=True)
class Channel:
    description: str
    key: str
    messages: tuple[str, ...]  # names in `components.messages`
    senders: tuple[str, ...]
    receivers: tuple[str, ...]


CHANNELS: dict[str, Channel] = {
    "control": Channel(
        "Camera, query, zone, line and rule registrations and deletions; replayed from the start at boot.",
        "entity id",
        ("ControlMessage",),
        ("api",),
        ("ingest", "analyzer", "rules", "sink"),
    ),
    "frames": Channel(
        "Sampled frames as JPEG bytes, metadata in headers; an end-of-stream marker when a source ends.",
        "camera_id",
        ("Frame", "EndOfStream"),
        ("ingest",),
        ("analyzer", "api"),
    ),
    "detections": Channel(
        "Tracked objects: start, update and end of each track.",
        "camera_id",
        ("ObjectEvent",),
        ("analyzer",),
        ("sink", "rules"),
    ),
    "summaries": Channel(
        "One summary per window per summary query.", "camera_id", ("Summary",), ("analyzer",), ("sink",)
    ),
    "status": Channel(
        "Lifecycle state, fps, lag, drops and counters of cameras and workers.",
        "camera_id or worker id",
        ("StatusUpdate",),
        ("ingest", "analyzer", "rules", "sink"),
        ("sink",),
    ),
    "deadletter": Channel(
        "Messages a consumer could not process, with the reason and the original bytes.",
        "the original message's key",
        ("DeadLetter",),
        ("analyzer", "rules", "sink"),
        (),
    ),
    "analyzer_state": Channel(
        "Internal: the analyzer's tracker checkpoints (compacted in production).",
        "camera_id (or a restore marker)",
        ("Checkpoint",),
        ("analyzer",),
        ("analyzer",),
    ),
    "alerts": Channel(
        "Alerts raised by the zone/line rules.", "camera_id", ("Alert",), ("rules",), ("sink",)
    ),
    "rules_state": Channel(
        "Internal: the rules process's evaluator checkpoints (compacted in production).",
        "camera_id (or a restore marker)",
        ("Checkpoint",),
        ("rules",),
        ("rules",),
    ),
    "recordings": Channel(
        "Closed recording segments (the index entry; the video stays in storage).",
        "camera_id",
        ("RecordedSegment",),
        ("ingest",),
        ("sink",),
    ),
    SLOTS: Channel(
        "Internal: nothing is written; its partitions are the camera slots ingest's consumer group shares.",
        "-",
        (),
        (),
        ("ingest",),
    ),
}

JSON_MESSAGES: dict[str, type[Envelope]] = {
    "ControlMessage": ControlMessage,
    "ObjectEvent": ObjectEvent,
    "Summary": Summary,
    "StatusUpdate": StatusUpdate,
    "DeadLetter": DeadLetter,
    "Alert": Alert,
    "RecordedSegment": RecordedSegment,
}


def _schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    """Each model's JSON Schema with nested models as shared `components.schemas` entries; an
    envelope's `schema` field is pinned to its tag (the model fills it in, so pydantic says "")."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(by_alias=True, ref_template=REF, mode="serialization")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    tags = {c.__name__: c.SCHEMA for c in ALL_CONTRACTS}
    for name, schema in out.items():
        prop = schema.get("properties", {}).get("schema")
        if name in tags and prop is not None:
            prop.update(const=tags[name], default=tags[name])
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _key(description: str) -> dict[str, Any]:
    return {"kafka": {"key": {"type": "string", "description": description}, "bindingVersion": KAFKA_BINDING}}


def _schema_header(tag: str) -> dict[str, Any]:
    return {"type": "string", "const": tag, "description": "the payload's schema tag"}


def _messages() -> dict[str, Any]:
    msgs: dict[str, Any] = {
        name: {
            "name": name,
            "title": model.SCHEMA,
            "contentType": "application/json",
            "payload": _ref(name),
            "headers": {"type": "object", "properties": {SCHEMA_HEADER: _schema_header(model.SCHEMA)}},
        }
        for name, model in JSON_MESSAGES.items()
    }
    msgs["Frame"] = {
        "name": "Frame",
        "title": FrameMeta.SCHEMA,
        "summary": "One sampled frame: JPEG bytes; what it is in the headers.",
        "contentType": "image/jpeg",
        "payload": {
            "type": "string",
            "format": "binary",
            "description": "the JPEG (encoded size in FrameMeta)",
        },
        "headers": {
            "type": "object",
            "required": [SCHEMA_HEADER, META_HEADER],
            "properties": {
                SCHEMA_HEADER: _schema_header(FrameMeta.SCHEMA),
                META_HEADER: {**_ref("FrameMeta"), "description": "FrameMeta as UTF-8 JSON"},
            },
        },
    }
    msgs["EndOfStream"] = {
        "name": "EndOfStream",
        "title": EndOfStream.SCHEMA,
        "summary": "A source ended or a camera stopped: in order with that camera's frames.",
        "contentType": "application/octet-stream",
        "payload": {"type": "string", "maxLength": 0, "description": "empty"},
        "headers": {
            "type": "object",
            "required": [SCHEMA_HEADER, META_HEADER],
            "properties": {
                SCHEMA_HEADER: _schema_header(EndOfStream.SCHEMA),
                META_HEADER: {**_ref("EndOfStream"), "description": "EndOfStream as UTF-8 JSON"},
            },
        },
    }
    msgs["Checkpoint"] = {
        "name": "Checkpoint",
        "title": "checkpoint",
        "summary": "Per-camera state for the partition's next owner; an empty value under a "
        "`__marker__:` key marks where a restore read to.",
        "contentType": "application/json",
        "payload": {"type": "object", "additionalProperties": True},
    }
    return msgs


def _id(text: str) -> str:
    return "".join(part.capitalize() if i else part for i, part in enumerate(text.split("_")))


def document(bus: BusConfig, version: str = "0") -> dict[str, Any]:
    topics = Topics.from_config(bus)
    kinds = [*Topics.__dataclass_fields__, SLOTS]
    missing = [k for k in kinds if k not in CHANNELS]
    if missing:
        raise LookupError(f"topics without an AsyncAPI channel: {missing}; add them to bus.asyncapi.CHANNELS")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for kind in kinds:
        ch = CHANNELS[kind]
        cid = _id(kind)
        address = getattr(topics, kind) if kind != SLOTS else bus.topic(SLOTS)
        channels[cid] = {
            "address": address,
            "title": kind,
            "description": f"{ch.description} Key: {ch.key}.",
            "messages": {m[0].lower() + m[1:]: {"$ref": f"#/components/messages/{m}"} for m in ch.messages},
            "bindings": {
                "kafka": {"topic": address, "partitions": bus.partitions, "bindingVersion": KAFKA_BINDING}
            },
        }
        refs = [{"$ref": f"#/channels/{cid}/messages/{name}"} for name in channels[cid]["messages"]]
        for action, who in (("send", ch.senders), ("receive", ch.receivers)):
            for process in who:
                operations[f"{process}{action.capitalize()}{cid[0].upper()}{cid[1:]}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{cid}"},
                    "summary": f"{process} {action}s {kind}",
                    "messages": refs,
                }
    messages = _messages()
    for name, msg in messages.items():
        key = next((CHANNELS[k].key for k in kinds if name in CHANNELS[k].messages), "")
        msg["bindings"] = _key(key)
    models: list[type[BaseModel]] = [*JSON_MESSAGES.values(), FrameMeta, EndOfStream]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Sightline",
            "version": version,
            "description": "Topics between Sightline's processes. Every JSON payload carries its "
            "`schema` tag (`sightline.<kind>/N`); a consumer dead-letters a tag it does not know.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": bus.bootstrap or "localhost:9092",
                "protocol": "kafka",
                "description": "the Kafka cluster (`bus.bootstrap`); `sightline up` starts an embedded one",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _schemas(models)},
    }
