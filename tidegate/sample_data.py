"""Deterministic customer-like CSV data: the demo sample, test files and the benchmark file.

Covers integers, text with non-ASCII characters, quoted text with commas, quotes and
newlines, ISO dates, decimals, every accepted boolean spelling and timestamps with offsets.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

HEADER = ["id", "name", "email", "city", "signup_date", "balance", "active", "last_seen", "notes"]

TABLE_SQL = """
DROP TABLE IF EXISTS {table};
CREATE TABLE {table} (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    email       varchar(120) NOT NULL UNIQUE,
    city        text,
    signup_date date NOT NULL,
    balance     numeric(12,2),
    active      boolean NOT NULL,
    last_seen   timestamptz,
    notes       text
);
"""

_FIRST = [
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Åsa",
    "Müller",
    "Renée",
    "Nuño",
    "Ólafur",
    "Chloé",
    "Amélie",
    "Dmitrij",
    "李",
    "Ana",
    "Björk",
    "Çelik",
    "Ewa",
    "François",
    "Grace",
    "Ümit",
]
_LAST = [
    "García",
    "O'Brien",
    "Nguyễn",
    "Kowalski",
    "Smith",
    "Jørgensen",
    "Dubois",
    "Schröder",
    "王",
    "Ivanović",
    "Rossi",
    "Yılmaz",
    "Novák",
    "Ahmed",
    "Lefèvre",
    "Müller",
]
_CITIES = [
    "Lisboa",
    "Kraków",
    "München",
    "Zürich",
    "São Paulo",
    "Reykjavík",
    "Malmö",
    "Tōkyō",
    "Москва",
    "Bogotá",
    "",
    "Córdoba",
    "Genève",
    "Århus",
]
_BOOLEANS = ["true", "false", "yes", "no", "1", "0", "TRUE", "No"]
_NOTES = [
    "",
    "",
    "",
    "vip",
    'said "hello", then left',
    "multi\nline note",
    "café ☕",
    "prefers email, not phone",
    "naïve résumé",
]
_BAD = [
    ("signup_date", "2024-13-45"),
    ("balance", "12,50"),
    ("active", "maybe"),
    ("name", ""),
    ("id", "x17"),
]
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def rows(
    count: int, *, seed: int = 7, bad_every: int = 0, start_id: int = 1
) -> Iterator[list[str]]:
    """`count` rows; with `bad_every` = n, every n-th row has one invalid cell."""
    rng = random.Random(seed)  # noqa: S311 — test data, not secrets
    for i in range(start_id, start_id + count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        seen = _EPOCH + timedelta(seconds=rng.randrange(0, 150_000_000))
        row = [
            str(i),
            f"{first} {last}",
            f"user{i}@example.com",
            rng.choice(_CITIES),
            (date(2015, 1, 1) + timedelta(days=rng.randrange(0, 3650))).isoformat(),
            f"{rng.randrange(-100_000, 10_000_000) / 100:.2f}",
            rng.choice(_BOOLEANS),
            seen.isoformat(timespec="seconds"),
            rng.choice(_NOTES),
        ]
        if bad_every and (i - start_id + 1) % bad_every == 0:
            column, value = _BAD[(i // bad_every) % len(_BAD)]
            row[HEADER.index(column)] = value
        yield row


def write_csv(out: TextIO, count: int, **options: int) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows(count, **options))


def write_file(path: Path, count: int, **options: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        write_csv(out, count, **options)
    return path
