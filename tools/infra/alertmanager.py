"""Alertmanager from Debian's package (``prometheus-alertmanager``): routes the operations alerts
(deploy/prometheus/alerts.yml) to the operations receiver — an email address and a webhook.

Debian 12's Alertmanager (0.25) has no Microsoft Teams receiver, so the Teams side is a webhook
receiver: locally it posts Alertmanager's JSON to the main job's Teams sink (``/operations``); in a
region it posts to an adapter that turns it into a card (docs/operations.md, "How the alerts are wired").
"""
from __future__ import annotations

import shutil
import time
import urllib.request

import yaml

from tools.infra.process import InfraError, ManagedProcess, port_open
from tools.infra.settings import InfraSettings

BINARIES = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's


def alertmanager_binary() -> str | None:
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


def routing_config(s: InfraSettings) -> dict:
    """Every operations alert to the operations receiver, grouped per alert and instance."""
    receiver: dict = {"name": "operations", "email_configs": [{
        "to": s.alertmanager_email_to, "from": s.alertmanager_email_from,
        "smarthost": s.alertmanager_smtp_smarthost, "require_tls": s.alertmanager_smtp_require_tls,
        "send_resolved": True,
    }]}
    if s.alertmanager_webhook_url:
        receiver["webhook_configs"] = [{"url": s.alertmanager_webhook_url, "send_resolved": True}]
    return {
        "route": {
            "receiver": "operations",
            "group_by": ["alertname", "instance"],
            "group_wait": f"{s.alertmanager_group_wait_s:g}s",
            "group_interval": "1m",
            "repeat_interval": s.alertmanager_repeat_interval,
        },
        "receivers": [receiver],
    }


class Alertmanager:
    name = "alertmanager"

    def __init__(self, settings: InfraSettings) -> None:
        self.s = settings
        self.process = ManagedProcess(self.name, settings.state_dir)
        self.dir = settings.state_dir / "alertmanager"

    @property
    def address(self) -> str:
        return f"{self.s.alertmanager_host}:{self.s.alertmanager_port}"

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "alertmanager.yml").write_text(yaml.safe_dump(routing_config(self.s), sort_keys=False))

    def up(self) -> str:
        if self.process.pid() is not None:
            return f"alertmanager already running on {self.address}"
        binary = alertmanager_binary()
        if binary is None:
            raise InfraError("'prometheus-alertmanager' not found on PATH: install it "
                             "(Debian: apt-get install prometheus-alertmanager)")
        if port_open(self.s.alertmanager_host, self.s.alertmanager_port):
            raise InfraError(f"port {self.s.alertmanager_port} is taken by a process flk did not start; "
                             "set FLK_INFRA_ALERTMANAGER_PORT")
        self.write_config()
        self.process.start([
            binary, f"--config.file={self.dir / 'alertmanager.yml'}", f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",  # one instance: no gossip port
        ])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise InfraError(f"alertmanager exited during start-up: {self.process.log_tail(5)}")
            try:
                with urllib.request.urlopen(f"http://{self.address}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return f"alertmanager up on http://{self.address}"
            except OSError:
                time.sleep(0.3)
        self.process.stop()
        raise InfraError("alertmanager did not become ready within 30s")

    def down(self) -> str:
        return "alertmanager stopped" if self.process.stop() else "alertmanager was not running (started by flk)"

    def status(self) -> str:
        pid = self.process.pid()
        return f"alertmanager: running (pid {pid}) on http://{self.address}" if pid else "alertmanager: stopped"
