"""The operations alerting rules (deploy/prometheus/alerts.yml): valid for Prometheus, every rule
unit-tested with promtool (deploy/prometheus/alerts.test.yml), a runbook section for each, on
metrics that exist, and grouped only by labels that never carry an identifier."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.support.required_tools import require_tool

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "operations.md"
#: the labels an alert may keep: where (job, instance), what stream (topic, group) and channel
ALLOWED_LABELS = {"job", "instance", "topic", "group", "channel", "outcome"}


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = require_tool("promtool", "prometheus")
    return subprocess.run([promtool, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_alerting_rules():
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alerting_rule_passes_its_promtool_unit_tests():
    tests = sorted(p.name for p in RULES.parent.glob("*.test.yml"))
    assert tests, "no deploy/prometheus/*.test.yml"
    result = _promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_tested_firing_and_quiet():
    fired, quiet = set(), set()
    for test_file in RULES.parent.glob("*.test.yml"):
        for test in yaml.safe_load(test_file.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in _rules()}
    assert names - fired == set(), "rules never seen firing in a test"
    assert names - quiet == set(), "rules never seen quiet in a test"


def test_every_rule_has_a_runbook_section_that_its_annotation_names():
    headings = {m.group(1) for m in re.finditer(r"^#{2,3} (\w+)\s*$", RUNBOOK.read_text(), re.MULTILINE)}
    for rule in _rules():
        name = rule["alert"]
        assert name in headings, f"docs/operations.md has no '### {name}'"
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name


def test_every_metric_a_rule_reads_is_exported_by_the_code():
    source = "\n".join(p.read_text() for top in ("flk", "services") for p in (ROOT / top).rglob("*.py"))
    for rule in _rules():
        for metric in set(re.findall(r"\bflk_\w+", rule["expr"])):
            if metric.endswith("_"):  # a name pattern: flk_.*events_dead_lettered_total
                continue
            assert f'"{metric}"' in source, f"{rule['alert']} reads {metric}, which no code exports"


def test_rules_aggregate_only_by_labels_that_carry_no_identifier():
    for rule in _rules():
        for clause in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"]):
            labels = {label.strip() for label in clause.split(",") if label.strip()}
            assert labels <= ALLOWED_LABELS, (rule["alert"], labels - ALLOWED_LABELS)


def _amtool(*args: str) -> subprocess.CompletedProcess:
    amtool = require_tool("amtool", "prometheus-alertmanager")
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60)


def _local_configs(tmp_path: Path) -> tuple[Path, Path]:
    """The loopback Prometheus and Alertmanager configurations the project's infra code writes."""
    from tools.infra.alertmanager import Alertmanager
    from tools.infra.prometheus import Prometheus
    from tools.infra.settings import InfraSettings

    settings = InfraSettings(state_dir=tmp_path)
    prometheus, alertmanager = Prometheus(settings), Alertmanager(settings)
    prometheus.write_config()
    alertmanager.write_config()
    config = yaml.safe_load((prometheus.dir / "prometheus.yml").read_text())
    assert config["rule_files"] == [str(RULES)]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [alertmanager.address]
    return prometheus.dir / "prometheus.yml", alertmanager.dir / "alertmanager.yml"


def test_both_prometheus_configurations_load_the_rules(tmp_path):
    local, _ = _local_configs(tmp_path)
    for config in (local, RULES.parent / "prometheus.yml"):
        result = _promtool("check", "config", str(config))
        assert result.returncode == 0 and "9 rules found" in result.stdout, result.stdout + result.stderr


def test_both_alertmanager_configurations_route_every_alert_to_the_operations_receiver(tmp_path):
    _, local = _local_configs(tmp_path)
    for config in (local, ROOT / "deploy" / "alertmanager" / "alertmanager.yml"):
        assert _amtool("check-config", str(config)).returncode == 0, config
        for rule in _rules():
            routed = _amtool("config", "routes", "test", f"--config.file={config}", f"alertname={rule['alert']}",
                             f"severity={rule['labels']['severity']}")
            assert routed.stdout.strip() == "operations", (config, rule["alert"], routed.stdout + routed.stderr)
        receiver = yaml.safe_load(config.read_text())["receivers"][0]
        assert receiver["email_configs"][0]["to"] == "operations@flk.local"


def test_compose_runs_alertmanager_for_prometheus_with_the_rules_mounted():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    prometheus = compose["prometheus"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus["volumes"]
    assert prometheus["depends_on"]["alertmanager"] == {"condition": "service_healthy"}
    assert "./deploy/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in \
        compose["alertmanager"]["volumes"]
    config = yaml.safe_load((RULES.parent / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    smarthost = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())[
        "receivers"][0]["email_configs"][0]["smarthost"]
    assert smarthost == "mailcatcher:1025" and "mailcatcher" in compose
