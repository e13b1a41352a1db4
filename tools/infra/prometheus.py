"""Prometheus from Debian's package, scraping the services' metrics endpoints."""
from __future__ import annotations

import shutil
import time
import urllib.request

from tools.infra.process import InfraError, ManagedProcess, port_open
from tools.infra.settings import InfraSettings


class Prometheus:
    name = "prometheus"

    def __init__(self, settings: InfraSettings) -> None:
        self.s = settings
        self.process = ManagedProcess(self.name, settings.state_dir)
        self.dir = settings.state_dir / "prometheus"

    @property
    def address(self) -> str:
        return f"{self.s.prometheus_host}:{self.s.prometheus_port}"

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        targets = ", ".join(f"'{t}'" for t in self.s.prometheus_scrape_targets)
        (self.dir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
            "scrape_configs:\n"
            f"  - job_name: flk\n    static_configs:\n      - targets: [{targets}]\n"
            f"  - job_name: prometheus\n    static_configs:\n      - targets: ['{self.address}']\n"
        )

    def up(self) -> str:
        if self.process.pid() is not None:
            return f"prometheus already running on {self.address}"
        binary = shutil.which("prometheus")
        if binary is None:
            raise InfraError("'prometheus' not found on PATH: install it (Debian: apt-get install prometheus)")
        if port_open(self.s.prometheus_host, self.s.prometheus_port):
            raise InfraError(f"port {self.s.prometheus_port} is taken by a process flk did not start; "
                             "set FLK_INFRA_PROMETHEUS_PORT")
        self.write_config()
        self.process.start([
            binary, f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address={self.address}",
            "--storage.tsdb.retention.time=15d",
        ])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise InfraError(f"prometheus exited during start-up: {self.process.log_tail(5)}")
            try:
                with urllib.request.urlopen(f"http://{self.address}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return f"prometheus up on http://{self.address}"
            except OSError:
                time.sleep(0.3)
        self.process.stop()
        raise InfraError("prometheus did not become ready within 30s")

    def down(self) -> str:
        return "prometheus stopped" if self.process.stop() else "prometheus was not running (started by flk)"

    def status(self) -> str:
        pid = self.process.pid()
        return f"prometheus: running (pid {pid}) on http://{self.address}" if pid else "prometheus: stopped"
