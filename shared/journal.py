"""An import's journal (`tidegate.import_journal`): the moments of its timeline that are not
chunk facts or operations — state changes, re-drives, refused attempts, dead-lettered
events. Written by whichever service saw the moment; read by `GET /imports/{id}/events`.
A journal entry is information: failing to write one never fails the work it describes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from shared.db import Conn


async def note(
    conn: Conn,
    import_id: uuid.UUID,
    service: str,
    kind: str,
    seq: int | None = None,
    **detail: Any,
) -> None:
    await conn.execute(
        "INSERT INTO tidegate.import_journal (import_id, service, kind, seq, detail)"
        " VALUES ($1, $2, $3, $4, $5)",
        import_id,
        service,
        kind,
        seq,
        msgspec.json.encode(detail).decode() if detail else None,
    )


def refusals(
    conn: Conn, import_id: uuid.UUID, service: str, seq: int, attempts: int
) -> Callable[[int, BaseException], Awaitable[None]]:
    """A `with_attempts` listener that notes each refused attempt at a chunk."""

    async def refused(attempt: int, exc: BaseException) -> None:
        await note(
            conn, import_id, service, "attempt_refused", seq,
            attempt=attempt, of=attempts, error=repr(exc),
        )  # fmt: skip

    return refused
