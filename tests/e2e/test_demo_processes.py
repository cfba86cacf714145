"""The README's main job: `tidegate demo` runs each service as its own process
(`python -m services.<name>`), imports the bundled sample and stops them gracefully."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_stack_as_processes(
    database_url: str, bootstrap: str, tmp_path: Path
) -> None:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TIDEGATE_HOME=str(tmp_path),
    )
    run = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"status": "completed"' in run.stdout
    assert "public.demo_customers now holds 2000 rows" in run.stdout
    assert "all services stopped cleanly" in run.stdout
    assert "revoked the demo's keys" in run.stdout
    for service in ("gateway", "validator", "loader", "auditor"):
        lines = (tmp_path / "logs" / f"{service}.log").read_text().splitlines()
        records = [json.loads(line) for line in lines]  # every line is a JSON object
        assert all(r["service"] == service for r in records if "service" in r)
    finished = [
        json.loads(line)
        for line in (tmp_path / "logs" / "auditor.log").read_text().splitlines()
        if "import finished" in line
    ]
    assert finished and finished[0]["import_id"] and finished[0]["status"] == "completed"
