"""What an upload is imported with: its options (the request's parameters with the table's
rule file filled in) and its owner. Apart from upload.py, so that the import store can name
them without importing the upload's parsing."""

from __future__ import annotations

import uuid

import msgspec

from shared import events
from shared.rulebook import NO_RULES, TableRules
from shared.text_encoding import Decision


class Owner(msgspec.Struct, frozen=True, kw_only=True):
    """The key (and its team) an import belongs to, and the concurrency slot it holds."""

    key_id: uuid.UUID
    team: str | None
    slot: int


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to read the file and what to do with it (the request's parameters, with the
    table's rule file filled in)."""

    chunk_size: int
    max_records: int
    mode: events.Mode = "import"
    on_duplicate: events.DuplicatePolicy = "reject"
    encoding: Decision | None = None  # None: detect
    delimiter: str | None = None  # None: sniff
    rules: TableRules = NO_RULES
    auto_retry: int = 3
    rollback_on_failure: bool = True
    atomic: bool = False
    backup: bool = False  # back the table up before the first chunk is loaded
    parent_id: uuid.UUID | None = None  # the import this one retries
    ignore_extra_columns: bool = False  # leave out header names the table does not have
