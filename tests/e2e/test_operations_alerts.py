"""The people on call are told: a real service process stops, the real Prometheus (Debian package)
evaluates deploy/prometheus/alerts.yml, the real Alertmanager (Debian's prometheus-alertmanager)
routes ServiceDown to the operations receiver — both its sides, the mail catcher (operations
address) and the Teams sink's webhook (/operations) — apart from the care alerts.

Short intervals keep it under a minute: scrape and evaluation every second, Alertmanager's group
wait 1 s, and ServiceDown's ``for`` shortened from 1 m to 5 s in a copy of the rules (its expression,
labels and annotations are the real ones; promtool's unit test covers the ``for``). On the way, every
rule is evaluated without error against a real service's metrics."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tools.infra.settings import InfraSettings
from tests.support.ports import free_port
from tests.support.required_tools import require_tool

pytestmark = pytest.mark.e2e

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def rules_with_short_for(target: Path, alert: str, for_: str) -> Path:
    rules = yaml.safe_load(RULES.read_text())
    found = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert]
    assert len(found) == 1, alert
    found[0]["for"] = for_
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def prometheus_value(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


def prometheus_rules(base: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/v1/rules?type=alert", timeout=5) as response:
        groups = json.loads(response.read())["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


async def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.3):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if result := await condition():
            return result
        await asyncio.sleep(interval_s)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


async def test_a_stopped_service_reaches_the_operations_receiver_as_ServiceDown(
        infra, fresh_database, topic_prefix, tmp_path):
    require_tool("prometheus", "prometheus")
    require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    from tools.infra.alertmanager import Alertmanager
    from tools.infra.prometheus import Prometheus
    from tools.mainjob.demo_sinks import MailCatcher, TeamsSink
    from tools.mainjob.processes import ServiceProcess

    started = time.monotonic()
    mail = MailCatcher(port=free_port())
    teams = TeamsSink(port=free_port())
    mail.start()
    await teams.start()
    notifier_port = free_port()
    notifier = ServiceProcess("notifier", ["notifier", "run"], {
        "FLK_KAFKA_BOOTSTRAP": infra.kafka_bootstrap, "FLK_DATABASE_URL": fresh_database,
        "FLK_TOPIC_PREFIX": topic_prefix, "FLK_NOTIFIER_HTTP_HOST": "127.0.0.1",
        "FLK_NOTIFIER_HTTP_PORT": str(notifier_port), "FLK_NOTIFIER_SMTP_HOST": "127.0.0.1",
        "FLK_NOTIFIER_SMTP_PORT": str(mail.port), "FLK_NOTIFIER_SMTP_TLS": "none",
    }, f"http://127.0.0.1:{notifier_port}/readyz", tmp_path / "logs")
    instance = f"127.0.0.1:{notifier_port}"
    settings = InfraSettings(
        state_dir=tmp_path / "state", prometheus_port=free_port(), prometheus_scrape_targets=[instance],
        prometheus_scrape_interval_s=1,
        prometheus_rule_files=[rules_with_short_for(tmp_path / "alerts.yml", "ServiceDown", "5s")],
        alertmanager_port=free_port(), alertmanager_smtp_smarthost=f"127.0.0.1:{mail.port}",
        alertmanager_webhook_url=teams.operations_url, alertmanager_group_wait_s=1,
    )
    alertmanager, prometheus = Alertmanager(settings), Prometheus(settings)
    base = f"http://{prometheus.address}"
    try:
        await notifier.start()
        await asyncio.gather(notifier.wait_ready(90), asyncio.to_thread(alertmanager.up))
        await asyncio.to_thread(prometheus.up)  # its first scrape finds the notifier up

        async def scraped_up():
            return await asyncio.to_thread(prometheus_value, base, f'up{{job="flk", instance="{instance}"}} == 1')
        await wait_for(scraped_up, 20, "Prometheus scraping the running notifier")

        async def group_lag_scraped():  # ConsumerLagGrowing's input, read from the broker by the notifier
            return await asyncio.to_thread(prometheus_value, base, 'flk_consumer_group_lag_records{group="notifier"}')
        await wait_for(group_lag_scraped, 20, "the notifier's consumer group lag in Prometheus")

        async def every_rule_evaluated():
            rules = await asyncio.to_thread(prometheus_rules, base)
            return rules if all(r["health"] != "unknown" for r in rules) else None
        rules = await wait_for(every_rule_evaluated, 20, "every rule evaluated once")
        assert {r["name"]: r["health"] for r in rules} == {r["name"]: "ok" for r in rules}, rules
        assert len(rules) == len(yaml.safe_load(RULES.read_text())["groups"][0]["rules"])
        assert not mail.operations_subjects and not teams.operations, "an operations alert while all was well"

        await notifier.stop()

        def firing_webhook():
            return [a for payload in teams.operations for a in payload["alerts"]
                    if a["status"] == "firing" and a["labels"]["alertname"] == "ServiceDown"]

        async def both_sides():
            return firing_webhook() and [s for s in mail.operations_subjects if "ServiceDown" in s]
        await wait_for(both_sides, 40, "ServiceDown at the mail catcher and the Teams sink's /operations")
    finally:
        await notifier.stop()
        await asyncio.to_thread(prometheus.down)
        await asyncio.to_thread(alertmanager.down)
        await teams.stop()
        mail.stop()

    alert = firing_webhook()[0]
    assert alert["labels"] == {"alertname": "ServiceDown", "instance": instance, "job": "flk",
                               "severity": "critical"}
    assert alert["annotations"]["runbook"] == "docs/operations.md#servicedown"
    assert teams.operations[0]["receiver"] == "operations"
    subject = next(s for s in mail.operations_subjects if "ServiceDown" in s)
    assert "FIRING" in subject and instance in subject
    assert mail.subjects == [] and teams.cards == [], "operations alerts counted as care alerts"
    assert time.monotonic() - started < 60
