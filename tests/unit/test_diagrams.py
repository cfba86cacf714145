"""The seed's diagrams: their Graphviz source renders, and the committed images are the
rendering of the committed source (`make diagrams`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import system_tool

DIAGRAMS = Path(__file__).parent.parent.parent / "docs" / "diagrams"
SOURCES = sorted(DIAGRAMS.glob("*.dot"))


def dot() -> str:
    return system_tool("dot", "graphviz")


def _labels(svg: str) -> list[str]:
    """The texts drawn, without layout (coordinates differ between Graphviz versions)."""
    return sorted(re.findall(r"<text[^>]*>([^<]*)</text>", svg))


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_the_committed_image_is_the_rendered_source(source: Path) -> None:
    rendered = subprocess.run(
        [dot(), "-Tsvg", str(source)], capture_output=True, text=True, check=True
    ).stdout
    committed = source.with_suffix(".svg").read_text()
    assert _labels(rendered) == _labels(committed), f"run: make diagrams ({source.name})"
    assert len(_labels(committed)) > 20


def test_both_seed_diagrams_are_there() -> None:
    assert {s.stem for s in SOURCES} == {"security-and-validation", "import-workflow"}
