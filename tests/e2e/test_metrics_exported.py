"""Every metric the alert rules and the Grafana dashboard query is one the running services
export (a name on `/metrics` of each service), so no panel or alert watches nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Running

ROOT = Path(__file__).parent.parent.parent
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count", "_created"),
}
# Prometheus' own series about its targets, not exported by any service.
FROM_PROMETHEUS = {"up"}


def queried() -> dict[str, set[str]]:
    """Metric name → where it is queried."""
    expressions: list[tuple[str, str]] = []
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        expressions += [(f"alert {r['alert']}", r["expr"]) for r in group["rules"]]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/tidegate.json").read_text())
    for panel in dashboard["panels"]:
        expressions += [(f"panel {panel['title']}", t["expr"]) for t in panel["targets"]]
    names: dict[str, set[str]] = {}
    for where, expr in expressions:
        for name in re.findall(r"\b((?:tidegate|process)_[a-z_]+|up)\b(?!\s*\()", expr):
            names.setdefault(name, set()).add(where)
    return names


async def test_every_queried_metric_is_exported(services: Running) -> None:
    exported: set[str] = set()
    # The session's four services run in this process and share its registry, so the
    # gateway's /metrics lists the names of all of them.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{services.api}/metrics") as response:
            text = await response.text()
    for family in text_string_to_metric_families(text):
        exported |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    wanted = queried()
    assert len(wanted) > 20
    missing = {name: sorted(where) for name, where in wanted.items() if name not in exported}
    assert set(missing) <= FROM_PROMETHEUS, missing
