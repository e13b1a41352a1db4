"""docker-compose.yml cannot run here (no Docker engine): check it statically."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
ONE_SHOT = {"setup"}


def test_every_long_running_service_has_a_healthcheck():
    for name, service in COMPOSE["services"].items():
        if name not in ONE_SHOT and service.get("profiles") is None:
            assert "healthcheck" in service, name


def test_dependencies_name_existing_services_and_wait_for_health_or_completion():
    services = COMPOSE["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition["condition"] == expected, (name, dependency)


def test_every_mounted_project_file_exists():
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_kafka_runs_in_kraft_mode_from_the_apache_image():
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == 0
