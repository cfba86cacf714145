"""The loader's chunk ledger as others read it: a recorded outcome is the chunk.loaded
event that announced it (the loader re-announces it on a redelivery; the auditor's
reconciler counts it when that event was lost)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from shared.events import ChunkLoaded, RowError

# The columns `outcome_of` reads.
OUTCOME_COLUMNS = (
    "seq, loaded_rows, failed_rows, updated_rows, skipped_rows, duplicate_rows, errors, chunk_error"
)

_errors = msgspec.msgpack.Decoder(list[RowError])


def outcome_of(import_id: uuid.UUID, entry: Mapping[str, Any]) -> ChunkLoaded:
    return ChunkLoaded(
        import_id=import_id,
        seq=entry["seq"],
        loaded_rows=entry["loaded_rows"],
        failed_rows=entry["failed_rows"],
        updated_rows=entry["updated_rows"],
        skipped_rows=entry["skipped_rows"],
        duplicate_rows=entry["duplicate_rows"],
        errors=_errors.decode(entry["errors"]) if entry["errors"] else [],
        chunk_error=entry["chunk_error"],
    )
