"""The whole main job on a broker that enforces least privilege: a private broker with SASL and the
KRaft StandardAuthorizer, the ACLs of `flk kafka acls` applied, each service under its own principal
and the simulator publishing each external writer's topics as that writer (ehr, region, roster,
population-register, acg, municipality). Only the job's own bookkeeping (topics, lag, dead-letter
counts) runs as the super user, as an operator's tools would.

A reduced population (500 people, snapshots at the baseline and today only) keeps it to a couple of
minutes; FLK_TEST_ACL_MAIN_JOB_PEOPLE=0 runs the whole small preset with its usual snapshots instead
(docs/benchmarks.md has both figures)."""
from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import date
from pathlib import Path

import pytest

from tests.support.acl_broker import prepare, start_acl_broker, stop_acl_broker
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e



async def _publish_malformed_visit(broker) -> None:
    """As the EHR: a message that is not an event, which the continuity worker must dead-letter
    (the dead-letter topic is one it may write because it consumes the visits)."""
    from flk.events.producer import new_producer

    producer = new_producer(broker.bootstrap, "acl-e2e-ehr", broker.connection("ehr"))
    await producer.start()
    try:
        await producer.send_and_wait(broker.prefix + "ehr.visits.v1", b"not json at all", key=b"malformed-0")
    finally:
        await producer.stop()


async def test_the_main_job_runs_with_every_service_under_its_own_least_privilege_principal(
        infra, fresh_database, tmp_path):
    from tools.mainjob.cli import run_main_job
    from tools.mainjob.job import JobConfig

    broker = await asyncio.to_thread(start_acl_broker, free_port(), free_port(), f"acle2e{uuid.uuid4().hex[:6]}.")
    output: list[str] = []
    try:
        await prepare(broker)
        await _publish_malformed_visit(broker)
        people = int(os.environ.get("FLK_TEST_ACL_MAIN_JOB_PEOPLE", "500"))  # 0: the whole small preset
        ports = {k: free_port() for k in ("listing", "continuity", "notifier", "smtp", "teams", "ingest")}
        config = JobConfig(
            bootstrap=broker.bootstrap, database_url=fresh_database, state_dir=Path(tmp_path),
            preset="small", seed=7, end_date=date.today(), limit_people=people or None, topic_prefix=broker.prefix,
            listing_port=ports["listing"], continuity_port=ports["continuity"], notifier_port=ports["notifier"],
            smtp_port=ports["smtp"], teams_port=ports["teams"], ingest_port=ports["ingest"], timeout_s=240 if people else 600,
            snapshot_every_months=0 if people else 3, kafka_connection=broker.admin, principals=broker.principals,
        )
        seen: dict[str, str] = {}

        async def inspect(job) -> None:
            for name, service in job.services.items():
                seen[name] = service.env.get("FLK_KAFKA_SASL_USERNAME", "")

        code = await asyncio.wait_for(
            run_main_job(config, None, exit_after_summary=True, echo=output.append, on_summary=inspect), 900)
    finally:
        await asyncio.to_thread(stop_acl_broker, broker)
    text = "\n".join(output)
    print(text)
    assert code == 0, text
    assert seen == {"listing": "listing", "continuity": "continuity", "notifier": "notifier", "ingest": "ingest"}
    for goal in ("G1", "G2", "G3", "G4"):
        assert re.search(rf"^\s*{goal}\b", text, re.MULTILINE), f"no {goal} row:\n{text}"
    dead = re.search(r"Dead-lettered events: (\d+) \((.*)\)", text)
    assert dead and int(dead.group(1)) >= 1 and "ehr.visits.v1.dlq" in dead.group(2), text
    for log in (Path(tmp_path) / "logs").glob("*.log"):
        assert "AuthorizationFailed" not in log.read_text(errors="replace"), f"refused in {log}"
