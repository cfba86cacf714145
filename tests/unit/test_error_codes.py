"""The documented codes are exactly the codes the services use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from services.loader.handlers import SQLSTATE_CODES
from shared.error_codes import CODES, ErrorCode

ROOT = Path(__file__).parent.parent.parent


def test_docs_list_every_code_with_its_category() -> None:
    docs = (ROOT / "docs" / "problems.md").read_text()
    listed = dict(re.findall(r"^\| `([a-z_]+)` \| ([a-z]+) \|", docs, re.MULTILINE))
    assert listed == {code: category for code, (category, _) in CODES.items()}


def test_the_loader_maps_refusals_to_registered_codes() -> None:
    assert set(SQLSTATE_CODES.values()) | {"rejected_by_database"} <= set(CODES)


def test_the_type_of_a_code_is_the_registry() -> None:
    """`ErrorCode` (what mypy checks every RowError against) names exactly CODES."""
    assert list(get_args(ErrorCode)) == list(CODES)
