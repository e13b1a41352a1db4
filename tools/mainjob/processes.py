"""The services as child processes of the main job: start, wait until ready, stop.

Each child is `python -m tools.cli <service command>` with its own environment (ports, topic
prefix, database) and its output in a log file. Children run in their own process group, so
Ctrl-C in the terminal reaches only the main job, which stops them in order (SIGTERM, then
SIGKILL after a grace period). Only processes this module started are ever signalled.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ServiceFailed(RuntimeError):
    """A child exited or did not become ready; the message names it and quotes its log."""


@dataclass
class ServiceProcess:
    name: str
    args: list[str]  # after `python -m tools.cli`
    env: Mapping[str, str]
    ready_url: str | None
    log_dir: Path
    process: asyncio.subprocess.Process | None = field(default=None, init=False)

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"---- starting {self.name}: flk {' '.join(self.args)}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tools.cli", *self.args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **self.env}, start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def send_signal(self, sig: int) -> None:
        """Signal the running process (SIGUSR1: the continuity worker writes its snapshot now)."""
        if self.running():
            self.process.send_signal(sig)

    def check_alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise ServiceFailed(f"{self.name} exited with code {self.process.returncode}; "
                                f"last lines of {self.log_file}:\n{self.log_tail()}")

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        if self.ready_url is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            self.check_alive()
            if await asyncio.to_thread(_http_ok, self.ready_url):
                return
            await asyncio.sleep(0.3)
        raise ServiceFailed(f"{self.name} did not answer {self.ready_url} within {timeout_s:.0f}s; "
                            f"last lines of {self.log_file}:\n{self.log_tail()}")

    async def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL. Returns the exit code."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), grace_s)
        except asyncio.TimeoutError:
            proc.kill()
            return await proc.wait()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False
