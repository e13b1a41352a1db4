"""PostgreSQL stopped for 30 s under the running listing service (`flk listing run`).

A PRIVATE PostgreSQL (own port and state directory; the shared one on 15432 is never touched)
holds the listing register. While it is down the API answers 503 with a clear body, promptly (never
a hang, never a 500 trace); commands sent meanwhile through Kafka are applied after it returns; and
the outbox publishes each resulting event once (one event id per decision; a batch cut off between
the broker's acknowledgement and the database's UPDATE is re-sent with the same id, which the
consumers' inboxes drop).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from flk.events.envelope import make_record, read_record
from flk.events.producer import publish_many
from tools.infra.postgres import Postgres
from tools.infra.settings import InfraSettings
from flk.security.tokens import Role
from tests.integration.listing.listing_harness import (
    DOCTOR_1, ROLE_1, UNIT_A, UNIT_A_NAME, list_request, person, role_started, unit_register,
)
from tests.support.builders import a_patient_key

from reliability_deployment import TODAY
from reliability_support import (
    bearer, free_port, listing_service, platform_settings, read_topics, token, wait_until,
)

OUTAGE_S = float(os.environ.get("FLK_RELIABILITY_PG_OUTAGE_S", "30"))
COMMANDS_DURING_OUTAGE = 40


@pytest.fixture
def private_postgres():
    """A PostgreSQL of our own (initdb in a temporary directory the postgres OS user can reach)."""
    state = Path(tempfile.mkdtemp(prefix="flk-rel-pg-"))
    os.chmod(state, 0o755)
    settings = InfraSettings(state_dir=state, postgres_port=free_port())
    pg = Postgres(settings)
    pg.up()
    try:
        yield pg, settings
    finally:
        pg.down()
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
async def test_postgres_down_for_30_s_gives_503s_then_every_command_sent_meanwhile_is_applied_and_published_once(
        private_postgres, kafka_bootstrap, topic_prefix, producer, tmp_path):
    pg, infra = private_postgres
    dsn = infra.dsn("app")
    service = listing_service(kafka_bootstrap, topic_prefix, dsn, tmp_path)
    settings = platform_settings(kafka_bootstrap, topic_prefix, dsn)
    admin = bearer(token(settings, Role.LISTING_ADMIN, subject="reliability-admin"))
    first = a_patient_key(8000)
    meanwhile = [a_patient_key(8001 + i) for i in range(COMMANDS_DURING_OUTAGE)]
    on = TODAY - timedelta(days=10)
    facts = [make_record("care_unit.contracted.v1", unit_register(UNIT_A, UNIT_A_NAME), source="urn:test"),
             make_record("practitioner_role.started.v1", role_started(ROLE_1, DOCTOR_1, UNIT_A), source="urn:test")]
    facts += [make_record("person.registered.v1", person(p), source="urn:test") for p in [first, *meanwhile]]
    service.start()
    answers: list[tuple[str, int, float, dict]] = []
    try:
        await service.ready()
        await publish_many(producer, facts, topic_prefix)
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as client:
            async def first_listed() -> bool:
                r = await client.post("/commands/listing.request.v1", headers=admin,
                                      json=list_request(first, UNIT_A, on=on))
                return r.status_code == 200
            await wait_until(first_listed, timeout_s=60, interval_s=0.5, what="the register to be in place")
            # the population facts are handled per person concurrently: wait for every one of them
            await wait_until(lambda: _count(dsn, f"SELECT count(*) = {1 + COMMANDS_DURING_OUTAGE} FROM listing.person"),
                             timeout_s=30, interval_s=0.5, what="every person of the register")

            await asyncio.to_thread(pg.down)
            down_at = time.monotonic()
            commands = [make_record("listing.request.v1", list_request(p, UNIT_A, on=on), source="urn:test:ehr")
                        for p in meanwhile]
            await publish_many(producer, commands, topic_prefix)
            while time.monotonic() - down_at < OUTAGE_S:
                for what, call in (("read", client.get(f"/patients/{first}", headers=admin)),
                                   ("command", client.post("/commands/listing.request.v1", headers=admin,
                                                           json=list_request(a_patient_key(8999), UNIT_A, on=on))),
                                   ("readyz", client.get("/readyz"))):
                    started = time.monotonic()
                    r = await call
                    answers.append((what, r.status_code, time.monotonic() - started, _json(r)))
                await asyncio.sleep(2)
            await asyncio.to_thread(pg.up)
            outage = time.monotonic() - down_at

            async def all_applied() -> bool:
                try:
                    return await _count(dsn, "SELECT count(*) FROM listing.listing WHERE end_on IS NULL") \
                        == 1 + COMMANDS_DURING_OUTAGE
                except (OSError, asyncpg.PostgresError):
                    return False
            await wait_until(all_applied, timeout_s=90, interval_s=1.0, what="the commands sent meanwhile")
            await wait_until(lambda: _count(dsn, "SELECT count(*) = 0 FROM listing.outbox WHERE published_at IS NULL"),
                             timeout_s=60, what="the outbox to drain")
            after = await client.get(f"/patients/{meanwhile[0]}", headers=admin)
        assert service.alive and service.starts == 1, "the service rode the outage out"
    finally:
        service.stop()

    records = await read_topics(kafka_bootstrap, [topic_prefix + "listing.events.v1"])
    events = [read_record("listing.events.v1", r.key, r.value, r.headers) for r in records]
    started_ids: dict[str, set[str]] = {}
    for e in events:
        if e.event_type == "listing.started.v1":
            started_ids.setdefault(e.key, set()).add(e.id)
    ids = Counter(e.id for e in events)
    republished = sum(n - 1 for n in ids.values())

    bad = [(what, status, round(took, 1)) for what, status, took, _ in answers if status != 503 or took > 15]
    bodies = {orjson.dumps(body).decode() for what, _, _, body in answers if what != "readyz"}
    print(f"\npostgres outage {outage:.0f} s: {len(answers)} requests answered meanwhile "
          f"({Counter(s for _, s, _, _ in answers)}, slowest {max(t for _, _, t, _ in answers):.1f} s); "
          f"{COMMANDS_DURING_OUTAGE} commands sent through Kafka meanwhile, applied after recovery; "
          f"{len(ids)} distinct events published, 0 duplicated as distinct events; {republished} re-published "
          f"with the same event id (a relay batch acknowledged by Kafka whose UPDATE the outage cut off)")
    assert answers and bad == [], "every request during the outage answers 503 promptly"
    assert all(body.get("error") == "service_unavailable" and body.get("detail") for _, _, _, body in answers
               if body and "error" in body), bodies
    assert after.status_code == 200 and after.json()["listing"]["care_unit_id"] == UNIT_A
    assert set(started_ids) == {first, *meanwhile}, "every command's listing.started was published"
    assert {len(v) for v in started_ids.values()} == {1}, "each decision published as one event (one id)"
    # The relay is at-least-once by design (services/listing/adapters/relay.py): a batch the broker
    # acknowledged just before the database went away is published again after recovery with the SAME
    # event id, and every consumer's inbox drops it. What must never happen: two ids for one decision.
    in_flight_at_the_stop = started_ids[first]  # decided just before the database was stopped
    assert {i for i, n in ids.items() if n > 1} <= in_flight_at_the_stop, "only what was in flight is re-sent"


async def _count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _json(response: httpx.Response) -> dict:
    try:
        return response.json()
    except ValueError:
        return {"raw": response.text[:200]}
