"""Column definitions for unit tests, as the catalog would describe them."""

from __future__ import annotations

from shared.catalog import Column


def column(name: str, type_name: str, **extra: object) -> Column:
    """A nullable column without default unless `extra` says otherwise."""
    fields: dict[str, object] = {
        "name": name,
        "type_name": type_name,
        "type_sql": type_name,
        "cast_sql": type_name,
        "not_null": False,
        "has_default": False,
    }
    fields.update(extra)
    return Column(**fields)  # type: ignore[arg-type]
