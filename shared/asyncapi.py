"""The AsyncAPI 3.0 document of tidegate's topics, built from the event structs themselves.

`python -m shared.asyncapi > docs/asyncapi.json` writes it; a test keeps the committed file
equal to what the code would write, so the contract for upstream producers cannot drift.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import msgspec

from shared import events, topics

# (channel, topic, message, what a client does with it, description); a channel may carry
# several messages (one entry each, the channel described once).
_CHANNELS: tuple[tuple[str, str, type[msgspec.Struct], str, str], ...] = (
    (
        "chunkSubmitted",
        topics.CHUNK_SUBMITTED,
        events.ChunkSubmitted,
        "send",
        "Chunks of CSV files. An upstream producer sends a chunk's rows inline"
        " (ChunkSubmitted): it must use the import id as the record key so that an import's"
        " chunks are validated in file order, number chunks from 0, and mark the final one"
        " `last`; the validator stores the first copy of each. The gateway stores an upload's"
        " chunks in PostgreSQL and sends a reference to each (ChunkStored, the claim check).",
    ),
    (
        "chunkSubmitted",
        topics.CHUNK_SUBMITTED,
        events.ChunkStored,
        "receive",
        "",
    ),
    (
        "chunkValidated",
        topics.CHUNK_VALIDATED,
        events.ChunkValidated,
        "receive",
        "The validator's verdict on a stored chunk: the rows it drops, the cells it changed,"
        " its counts and every row error; never the rows.",
    ),
    (
        "chunkLoaded",
        topics.CHUNK_LOADED,
        events.ChunkLoaded,
        "receive",
        "The loader's outcome for a chunk (not sent for validate-only imports).",
    ),
    (
        "importStatus",
        topics.IMPORT_STATUS,
        events.ImportStatus,
        "receive",
        "The state and counts of an import after each fact the auditor applied.",
    ),
    (
        "operations",
        topics.OPERATIONS,
        events.OperationRequested,
        "receive",
        "Commands for the loader (rollback, backup, restore, backup deletion), sent through the"
        " outbox. The loader acts only on operations recorded in PostgreSQL.",
    ),
    (
        "operationFinished",
        topics.OPERATION_FINISHED,
        events.OperationFinished,
        "receive",
        "The outcome of an operation, recorded with its effect.",
    ),
    (
        "verifications",
        topics.VERIFICATIONS,
        events.VerificationRequested,
        "receive",
        "Commands for the validator: check tables' current rows (verify-data), sent through"
        " the outbox. The validator acts only on verifications recorded in PostgreSQL.",
    ),
)

_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 binary mode: attributes as Kafka headers.",
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "Deterministic: the same effect, the same id."},
        "ce_type": {"type": "string", "description": "The event's versioned type (its `type`)."},
        "ce_source": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "content-type": {"type": "string", "enum": [events.MSGPACK, events.JSON]},
    },
    "required": ["ce_id", "ce_type"],
}


def document() -> dict[str, Any]:
    structs = [struct for _, _, struct, _, _ in _CHANNELS]
    _, schemas = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    for schema in schemas.values():  # msgspec < 0.20 keeps docstrings' indentation
        if "description" in schema:
            schema["description"] = inspect.cleandoc(schema["description"])
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, address, struct, action, description in _CHANNELS:
        message = struct.__name__
        channel = channels.setdefault(
            name, {"address": address, "description": description, "messages": {}}
        )
        channel["messages"][message] = {"$ref": f"#/components/messages/{message}"}
        operations[f"{action}{message}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{message}"}],
        }
        messages[message] = {
            "name": events.type_tag(struct),
            "headers": _HEADERS,
            "payload": {"$ref": f"#/components/schemas/{message}"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": "The import id."},
                    "bindingVersion": "0.5.0",
                }
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "tidegate events",
            "version": "1.0.0",
            "description": (
                "Topics of the tidegate import pipeline. Payloads are MessagePack (JSON is"
                " accepted from upstream producers); schema changes only add fields with"
                " defaults, a breaking change is a new `...v2` type. Undecodable or invalid"
                f" events go to `{topics.DEAD_LETTER}` with `tg_error` headers."
            ),
        },
        "defaultContentType": events.MSGPACK,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")  # noqa: T201
