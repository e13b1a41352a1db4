"""One simulated region replayed through the real services (the main job's machinery), shared by
the e2e tests: a unique topic prefix, a fresh database, private ports, a real Prometheus (Debian
package) scraping the services, and a few malformed messages that must end in dead-letter topics.
"""
from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from tests.support.ports import free_port  # noqa: F401 - the e2e tests import it from here

#: malformed messages published before the replay: (event type whose topic gets it, value)
MALFORMED = (
    ("visit.recorded.v1", b"not json at all"),
    ("listing.request.v1", b'{"no": "cloudevents headers"}'),
    ("person.registered.v1", b"\xff\xfe"),
)


@dataclass
class RegionRun:
    job: object  # tools.mainjob.job.MainJob, while its services still run
    output: list[str]
    prometheus_url: str | None
    readonly_dsn: str
    exit_code: int | None = None
    checks: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(self.output)


async def _publish_malformed(bootstrap: str, prefix: str) -> None:
    from flk.events.admin import ensure_topics
    from flk.events.producer import new_producer
    from flk.events.registry import registry

    await ensure_topics(bootstrap, prefix=prefix)
    producer = new_producer(bootstrap, client_id="e2e-malformed")
    await producer.start()
    try:
        for i, (event_type, value) in enumerate(MALFORMED):
            topic = prefix + registry().topic_for(event_type).name
            await producer.send_and_wait(topic, value=value, key=f"malformed-{i}".encode())
    finally:
        await producer.stop()


@pytest.fixture(scope="package")  # torn down after the e2e tests, not at the end of the whole suite
async def region_run(infra, tmp_path_factory) -> RegionRun:
    """Runs `run_main_job` on the small preset; the tests run inside its `on_summary` hook via events."""
    import asyncpg

    from tools.infra.prometheus import Prometheus
    from tools.infra.settings import InfraSettings
    from tools.mainjob.cli import run_main_job
    from tools.mainjob.job import JobConfig

    state = tmp_path_factory.mktemp("main-job")
    prefix = f"e2e{uuid.uuid4().hex[:8]}."
    name = f"flk_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.dsn("admin", database="postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{infra.postgres_app_user}"')
    finally:
        await admin.close()

    ports = {k: free_port() for k in ("listing", "continuity", "notifier", "smtp", "teams", "prometheus", "ingest")}
    prometheus = None
    prometheus_url = None
    if shutil.which("prometheus"):
        prom_settings = InfraSettings(
            state_dir=Path(state) / "prometheus-state", prometheus_port=ports["prometheus"],
            prometheus_scrape_targets=[f"127.0.0.1:{ports[k]}" for k in ("listing", "continuity", "notifier", "ingest")])
        prometheus = Prometheus(prom_settings)
        await asyncio.to_thread(prometheus.up)
        prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"

    await _publish_malformed(infra.kafka_bootstrap, prefix)
    config = JobConfig(
        bootstrap=infra.kafka_bootstrap, database_url=infra.dsn("app", database=name), state_dir=Path(state),
        preset="small", seed=7, end_date=date.today(), limit_people=2000, topic_prefix=prefix,
        listing_port=ports["listing"], continuity_port=ports["continuity"], notifier_port=ports["notifier"],
        smtp_port=ports["smtp"], teams_port=ports["teams"], ingest_port=ports["ingest"], timeout_s=120,
    )
    run = RegionRun(job=None, output=[], prometheus_url=prometheus_url,
                    readonly_dsn=infra.dsn("readonly", database=name))
    ready, release = asyncio.Event(), asyncio.Event()

    async def hold(job) -> None:
        run.job = job
        ready.set()
        await release.wait()

    task = asyncio.create_task(run_main_job(config, prometheus_url, exit_after_summary=True,
                                            echo=run.output.append, on_summary=hold))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    try:
        yield run
    finally:
        release.set()
        run.exit_code = await task
        if prometheus is not None:
            await asyncio.to_thread(prometheus.down)
        from flk.events.admin import delete_topics_with_prefix

        try:
            await delete_topics_with_prefix(infra.kafka_bootstrap, prefix)
        except Exception:  # noqa: BLE001 - best effort
            pass
        admin = await asyncpg.connect(infra.dsn("admin", database="postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
