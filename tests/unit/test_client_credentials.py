"""pg_dump and psql are given the database URL without its password (issue 19, item 12)."""

from __future__ import annotations

import pytest

from services.loader.backups import connection_of


@pytest.mark.parametrize(
    ("url", "dbname", "password"),
    [
        (
            "postgresql://app:s%40cret@db.example:5433/prod?sslmode=require",
            "postgresql://app@db.example:5433/prod?sslmode=require",
            "s@cret",
        ),
        (
            "postgresql://app@db.example/prod?password=hunter2&sslmode=verify-full",
            "postgresql://app@db.example/prod?sslmode=verify-full",
            "hunter2",
        ),
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            "postgresql://postgres@/postgres?host=%2Ftmp%2Fpg",
            "",
        ),
        ("postgresql://app:pw@[::1]:5432/x", "postgresql://app@[::1]:5432/x", "pw"),
    ],
)
def test_the_password_leaves_the_url_for_the_environment(
    url: str, dbname: str, password: str
) -> None:
    target, env = connection_of(url)
    assert target == dbname
    assert env["PGPASSWORD"] == password


def test_a_url_without_a_password_sets_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    target, env = connection_of("postgresql://app@db/x")
    assert target == "postgresql://app@db/x"
    assert "PGPASSWORD" not in env
