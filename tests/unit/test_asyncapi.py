"""The committed AsyncAPI document is the one the event structs describe."""

from __future__ import annotations

import json
from pathlib import Path

from shared import asyncapi, topics

DOC = Path(__file__).parent.parent.parent / "docs" / "asyncapi.json"


def test_the_committed_document_is_current() -> None:
    assert DOC.read_text() == asyncapi.render(), (
        "run: python -m shared.asyncapi > docs/asyncapi.json"
    )


def test_every_channel_names_a_topic_and_a_schema() -> None:
    doc = json.loads(DOC.read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(topics.ALL) - {topics.DEAD_LETTER}
    for message in doc["components"]["messages"].values():
        name = message["payload"]["$ref"].rsplit("/", 1)[1]
        schema = doc["components"]["schemas"][name]
        assert schema["properties"]["type"]["enum"] == [message["name"]]
    submitted = doc["components"]["schemas"]["ChunkSubmitted"]
    assert {"import_id", "seq", "table", "columns", "rows"} <= set(submitted["required"])
    assert sorted(submitted["properties"]["mode"]["enum"]) == ["dry_run", "import", "validate_only"]
