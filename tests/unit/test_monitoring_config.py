"""The alert rules and the Grafana dashboard: promtool checks and unit-tests the rules
(deploy/prometheus/alerts_test.yml), every alert has a runbook entry, and the dashboard is
well formed. That the metrics they query exist is checked against running services
(tests/e2e/test_metrics_exported.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import system_tool

ROOT = Path(__file__).parent.parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tidegate.json"


def promtool() -> str:
    return system_tool("promtool", "prometheus")


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
    ],
)
def test_promtool_accepts_and_the_alerts_fire_when_they_should(args: tuple[str, ...]) -> None:
    done = subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def alerts() -> list[dict[str, object]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_every_alert_is_tested_and_has_a_runbook_entry() -> None:
    tested = (PROMETHEUS / "alerts_test.yml").read_text()
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for rule in alerts():
        name = str(rule["alert"])
        assert f"alertname: {name}" in tested, name
        assert f"### {name}" in runbook, name
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["runbook"] == f"docs/operations.md#{name.lower()}"


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = datasources["datasources"][0]["uid"]
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert re.search(r"(tidegate_|process_|\bup\b)", target["expr"]), target["expr"]
