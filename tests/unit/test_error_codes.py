"""The documented codes are exactly the codes the services use."""

from __future__ import annotations

import re
from pathlib import Path

from services.loader.handlers import SQLSTATE_CODES
from shared.error_codes import CODES

ROOT = Path(__file__).parent.parent.parent


def test_docs_list_every_code_with_its_category() -> None:
    docs = (ROOT / "docs" / "problems.md").read_text()
    listed = dict(re.findall(r"^\| `([a-z_]+)` \| ([a-z]+) \|", docs, re.MULTILINE))
    assert listed == {code: category for code, (category, _) in CODES.items()}


def test_the_loader_maps_refusals_to_registered_codes() -> None:
    assert set(SQLSTATE_CODES.values()) | {"rejected_by_database"} <= set(CODES)
