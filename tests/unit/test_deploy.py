"""docker-compose.yml and its configs are kept correct by review and by this test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "validator", "loader", "auditor")


def load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def test_compose_runs_every_service_against_kafka_and_postgres() -> None:
    compose = load("docker-compose.yml")["services"]
    for name in SERVICES:
        service = compose[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert set(service["depends_on"]) == {"postgres", "kafka"}
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        assert (ROOT / "services" / name / "__main__.py").is_file()
    assert compose["validator"]["deploy"]["replicas"] >= 2
    assert compose["loader"]["deploy"]["replicas"] >= 2
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in compose["kafka"]["environment"]
    for name in ("prometheus", "grafana", "lb", "postgres", "kafka"):
        assert name in compose
    for mount in compose["prometheus"]["volumes"] + compose["lb"]["volumes"]:
        assert (ROOT / mount.split(":")[0]).exists(), mount


def test_prometheus_scrapes_every_service() -> None:
    jobs = load("deploy/prometheus/prometheus.yml")["scrape_configs"]
    assert {job["dns_sd_configs"][0]["names"][0] for job in jobs} == set(SERVICES)
