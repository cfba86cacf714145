"""Uploads being received by this gateway: at most `max_uploads` at once (503 beyond), per
key no more than its free import slots (429), and one per Idempotency-Key (409 for the
same key while the first is received; across gateways, the later one to be recorded
replays the first). A received body holds no database connection, so these counts are
what bounds the gateway's memory, files and sockets."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from services.gateway.access import idempotency
from services.gateway.problems import retry_later

RETRY_AFTER_SECONDS = 5


class UploadGate:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._per_key: Counter[uuid.UUID] = Counter()
        self._idempotency: set[tuple[uuid.UUID, str]] = set()

    def receiving(self, key_id: uuid.UUID) -> int:
        """Uploads of this key being received now."""
        return self._per_key[key_id]

    @contextmanager
    def admit(self, key_id: uuid.UUID, idem_key: str | None) -> Iterator[None]:
        """Count an upload of `key_id` while it is received; 503 when the gateway already
        receives its limit, 409 while another with the same Idempotency-Key is."""
        held = None if idem_key is None else (key_id, idem_key)
        if held in self._idempotency:
            raise idempotency.in_use()
        if self._per_key.total() >= self._limit:
            raise retry_later(
                503,
                "too-many-uploads",
                "Too many uploads in progress",
                f"This gateway is receiving {self._limit} uploads; retry shortly.",
                RETRY_AFTER_SECONDS,
            )
        self._per_key[key_id] += 1
        if held is not None:
            self._idempotency.add(held)
        try:
            yield
        finally:
            self._idempotency.discard(held)
            self._per_key[key_id] -= 1
            if not self._per_key[key_id]:
                del self._per_key[key_id]


UPLOADS = web.AppKey("uploads", UploadGate)
