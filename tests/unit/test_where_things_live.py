"""docs/architecture.md's "Where things live" names every room (Python package) of the
code, and no room that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
ROOMS = ("services", "shared", "tidegate", "bench", "tools")


def test_the_map_lists_every_room_and_only_those() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `([\w/]+)/`", section, re.M))
    on_disk = {
        str(init.parent.relative_to(ROOT))
        for top in ROOMS
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert listed == on_disk, (sorted(on_disk - listed), sorted(listed - on_disk))
