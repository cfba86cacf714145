"""Settings from the environment, and header matching against a table definition."""

from __future__ import annotations

import pytest

from shared.catalog import Column, HeaderMismatch, TableDef, match_header, split_table_name
from shared.config import load_settings
from shared.errors import ConfigError

BASE = {"DATABASE_URL": "postgresql:///x", "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092"}


def test_settings_read_and_errors_name_the_variable() -> None:
    settings = load_settings("loader", {**BASE, "TIDEGATE_LOADER_PORT": "9001"})
    assert (settings.http_port, settings.service_name) == (9001, "loader")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings("loader", {"KAFKA_BOOTSTRAP_SERVERS": "x"})
    with pytest.raises(ConfigError, match="TIDEGATE_MAX_CHUNK_SIZE"):
        load_settings("gateway", {**BASE, "TIDEGATE_MAX_CHUNK_SIZE": "ten"})
    with pytest.raises(ConfigError, match="TIDEGATE_ALLOWED_SCHEMAS"):
        load_settings("gateway", {**BASE, "TIDEGATE_ALLOWED_SCHEMAS": "public,tidegate"})


def table() -> TableDef:
    def column(name: str, not_null: bool = False, has_default: bool = False) -> Column:
        return Column(
            name=name,
            type_name="text",
            type_sql="text",
            cast_sql="text",
            not_null=not_null,
            has_default=has_default,
        )

    return TableDef(
        oid=1,
        schema="public",
        name="t",
        primary_key=("id",),
        columns=(column("id", not_null=True), column("Name"), column("created", True, True)),
    )


def test_header_maps_case_insensitively_and_allows_omitting_defaults() -> None:
    assert match_header(["id", " name "], table()) == ("id", "Name")


def test_header_mismatch_names_missing_unexpected_and_duplicated() -> None:
    with pytest.raises(HeaderMismatch) as caught:
        match_header(["name", "NAME", "colour"], table())
    assert caught.value.missing == ["id"]
    assert caught.value.unexpected == ["colour"]
    assert caught.value.duplicated == ["Name"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("users", ("public", "users")),
        ("sales.orders", ("sales", "orders")),
        ("a.b.c", None),
        ('x"; DROP TABLE y; --', None),
        ("", None),
        ("x" * 64, None),
    ],
)
def test_table_names(raw: str, expected: tuple[str, str] | None) -> None:
    assert split_table_name(raw, "public") == expected


def test_a_table_name_longer_than_postgresqls_limit_in_bytes_is_no_name() -> None:
    """PostgreSQL limits names to 63 bytes: 40 two-byte characters are too long (an error
    there, which answered 500), though only 40 characters."""
    assert split_table_name("é" * 31, "public") == ("public", "é" * 31)
    assert split_table_name("é" * 40, "public") is None
    assert split_table_name(f"{'s' * 63}.t", "public") == ("s" * 63, "t")
