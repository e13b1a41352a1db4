"""`flk infra` is idempotent and manages only what it started."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.support.required_tools import require_tool
from click.testing import CliRunner

from tools.infra.cli import infra as infra_cli
from tools.infra.kafka import Kafka
from tools.infra.postgres import Postgres
from tools.infra.process import InfraError
from tools.infra.prometheus import Prometheus


def test_second_up_is_a_no_op_and_keeps_the_same_processes(infra):
    kafka, postgres = Kafka(infra), Postgres(infra)
    pids = (kafka.process.pid(), postgres.process.pid())

    assert "already running" in kafka.up()
    assert "already running" in postgres.up()
    assert (kafka.process.pid(), postgres.process.pid()) == pids


def test_bootstraps_of_one_server_at_once_take_turns_instead_of_failing(infra):
    """The test suite's processes each run `up` (the server's roles and database) at the same moment:
    concurrent ALTER ROLEs of one role failed with "tuple concurrently updated"."""
    import asyncio

    async def at_once() -> None:
        await asyncio.gather(*(Postgres(infra).bootstrap() for _ in range(4)))

    for _ in range(5):
        asyncio.run(at_once())


def test_postgres_runs_with_pg_stat_statements_and_checkpoints_by_time_for_the_replay(infra):
    import asyncio

    import asyncpg

    async def settings() -> dict[str, str]:
        conn = await asyncpg.connect(infra.dsn("admin", database="postgres"))
        try:
            return {name: await conn.fetchval(f"SHOW {name}")
                    for name in ("shared_preload_libraries", "max_wal_size", "checkpoint_timeout", "shared_buffers",
                                 "autovacuum_naptime")}
        finally:
            await conn.close()

    shown = asyncio.run(settings())
    assert "pg_stat_statements" in shown["shared_preload_libraries"]
    assert (shown["max_wal_size"], shown["checkpoint_timeout"], shown["shared_buffers"]) == ("8GB", "15min", "1GB")
    assert shown["autovacuum_naptime"] == "10s"


def test_status_names_each_part_and_where_it_listens(infra):
    result = CliRunner().invoke(infra_cli, ["status"])
    assert result.exit_code == 0
    assert "kafka: running" in result.output and infra.kafka_bootstrap in result.output
    assert "postgres: running" in result.output
    assert "***" in result.output and infra.postgres_app_password.get_secret_value() not in result.output


def test_a_port_taken_by_someone_else_gives_a_clear_error(infra):
    other = infra.model_copy(update={"state_dir": infra.state_dir / "elsewhere"})
    with pytest.raises(InfraError, match=f"port {infra.kafka_port} is taken by a process flk did not start"):
        Kafka(other).up()


def test_prometheus_on_request_answers_queries(infra):
    require_tool("prometheus")
    prometheus = Prometheus(infra)
    started_here = prometheus.process.pid() is None
    prometheus.up()
    try:
        deadline = time.monotonic() + 30
        result: list = []
        while not result and time.monotonic() < deadline:
            url = f"http://{prometheus.address}/api/v1/query?query=up%7Bjob%3D%22prometheus%22%7D"
            with urllib.request.urlopen(url, timeout=2) as response:
                result = json.load(response)["data"]["result"]
            time.sleep(0.5)
        assert result and result[0]["value"][1] == "1"
    finally:
        if started_here:
            prometheus.down()
