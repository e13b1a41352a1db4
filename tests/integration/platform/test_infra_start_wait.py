"""Waiting for a starting broker: on while it shows signs of life, not for ever, and with its log."""
from __future__ import annotations

import sys
import time

import pytest

from tools.infra.kafka import wait_for_kafka
from tools.infra.process import InfraError, ManagedProcess
from tests.e2e.conftest import free_port


@pytest.fixture
def managed(tmp_path):
    process = ManagedProcess("kafka", tmp_path)
    yield process
    process.stop(timeout_s=5)


def _start(process: ManagedProcess, code: str) -> None:
    process.start([sys.executable, "-u", "-c", code])


def test_a_broker_that_keeps_logging_is_waited_for_beyond_the_quiet_timeout_up_to_the_limit(managed):
    _start(managed, "import time\nwhile True:\n    print('loading partitions', flush=True)\n    time.sleep(0.2)")
    started = time.monotonic()
    with pytest.raises(InfraError, match="did not answer metadata requests") as error:
        wait_for_kafka(f"127.0.0.1:{free_port()}", timeout_s=1.0, process=managed, max_s=4.0)
    waited = time.monotonic() - started
    assert 3.5 <= waited < 8.0
    assert "loading partitions" in str(error.value) and "flk infra prune" in str(error.value)


def test_a_silent_broker_fails_after_the_quiet_timeout(managed):
    _start(managed, "import time\ntime.sleep(60)")
    started = time.monotonic()
    with pytest.raises(InfraError, match="did not answer metadata requests"):
        wait_for_kafka(f"127.0.0.1:{free_port()}", timeout_s=1.0, process=managed, max_s=30.0)
    assert time.monotonic() - started < 5.0


def test_a_broker_that_exits_during_start_up_fails_at_once_with_its_log(managed):
    _start(managed, "print('bad server.properties'); raise SystemExit(1)")
    with pytest.raises(InfraError, match="kafka exited during start-up") as error:
        wait_for_kafka(f"127.0.0.1:{free_port()}", timeout_s=20.0, process=managed, max_s=20.0)
    assert "bad server.properties" in str(error.value)
