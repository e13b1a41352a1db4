"""docker-compose.yml cannot run here (no Docker engine): check it statically."""
from __future__ import annotations

from pathlib import Path

import pytest
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


def test_the_file_is_valid_under_the_compose_specification():
    """Parsed by the compose-spec bindings (the `compose_spec` Rust crate: every key, type, duration
    and depends_on condition of the Compose Specification); YAML merge keys are resolved first."""
    import json

    from compose_spec import PyCompose

    parsed = PyCompose.from_json(json.dumps(COMPOSE))
    assert set(parsed.service_names()) == set(COMPOSE["services"])


def test_a_typo_in_a_condition_or_a_key_fails_the_compose_specification():
    import json

    from compose_spec import PyCompose

    text = (ROOT / "docker-compose.yml").read_text()
    for broken in (text.replace("service_healthy", "service_healty", 1),
                   text.replace("healthcheck:", "healthchek:", 1),
                   text.replace("interval: 5s", "interval: 5 parsecs", 1)):
        with pytest.raises(ValueError):
            PyCompose.from_json(json.dumps(yaml.safe_load(broken)))


def test_the_three_services_run_with_the_contract_ports_and_wait_for_setup():
    services = COMPOSE["services"]
    for name, command, port in (("listing", ["listing", "run"], 8081), ("notifier", ["notifier", "run"], 8083),
                                ("ingest", ["ingest", "run", "--no-migrate"], 8084)):
        assert services[name]["command"] == command
        assert f"localhost:{port}" in " ".join(services[name]["healthcheck"]["test"])
    assert "flk continuity worker" in services["continuity"]["entrypoint"][-1]
    assert services["continuity"]["environment"]["FLK_CONTINUITY_HTTP_PORT"] == 8082
    for name in ("listing", "continuity", "notifier", "ingest"):
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"


def test_continuity_scales_out_without_host_port_clashes_and_keeps_state_per_replica():
    services = COMPOSE["services"]
    region, replica = services["continuity"], services["continuity-replica"]
    assert replica["profiles"] == ["scale-out"]
    assert all(":" not in str(p) for p in replica.get("ports", [])), "a fixed host port blocks --scale"
    for service in (region, replica):
        assert "container_name" not in service
        # one RocksDB folder per replica, and its stable name for static membership
        assert "--data-dir /var/lib/flk/continuity/$$HOSTNAME" in service["entrypoint"][-1]
        assert "FLK_REPLICA_NAME=$$HOSTNAME" in service["entrypoint"][-1]
        assert any(v.startswith("continuity-data:") for v in service["volumes"])
    # the replicas split the partitions in their own group and leave the region's snapshots to the region worker
    assert replica["environment"]["FLK_CONTINUITY_GROUP_ID"] == "continuity.replicas"
    assert replica["environment"]["FLK_CONTINUITY_FOLLOW_CHANGELOG"] == "true"  # follows the worker: one writer
    assert replica["environment"]["FLK_CONTINUITY_SNAPSHOT_ENABLED"] == "false"
    assert "FLK_CONTINUITY_GROUP_ID" not in region["environment"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    flk = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "flk")
    assert flk["dns_sd_configs"][0]["names"] == ["continuity", "continuity-replica"]
    assert "ingest:8084" in flk["static_configs"][0]["targets"]


def test_grafana_is_provisioned_and_the_simulator_is_an_optional_profile():
    services = COMPOSE["services"]
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in mounts
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards" in mounts
    assert services["simulator"]["profiles"] == ["simulator"]
    assert services["simulator"]["command"][0] == "simulate"


def test_the_image_lets_the_service_user_write_the_continuity_volume():
    dockerfile = (ROOT / "Dockerfile").read_text()
    mount = next(v for v in COMPOSE["services"]["continuity"]["volumes"] if v.startswith("continuity-data:"))
    folder = mount.split(":")[1]
    assert f"mkdir -p {folder}" in dockerfile and "chown -R flk:flk /var/lib/flk" in dockerfile
    assert dockerfile.index("chown") < dockerfile.index("USER flk")
