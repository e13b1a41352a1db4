"""Register facts from Kafka in chunks (one transaction per chunk, service_layer/fact_chunks.py) give
exactly what one transaction per fact gives: the same rows (and history rows), the same outbox
events in the same order, the same inbox, the same dead letters with their reasons; a fact counted
once however often it is delivered; a person's facts applied in order; a crash in the middle of a
chunk loses nothing and applies nothing twice."""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta, timezone

import asyncpg
import pytest

from listing_harness import (
    DOCTOR_1,
    ROLE_1,
    START,
    UNIT_A,
    UNIT_A_NAME,
    list_request,
    person,
    rfc3339,
    role_started,
    unit_register,
)

from flk.events.dlq import REASON
from services.listing.service_layer.dispatch import handle_message
from services.listing.service_layer.fact_chunks import handle_fact_chunk
from services.listing.service_layer.handlers import FACT_HANDLERS, Deps, InvalidMessage, Message
from tests.support.builders import a_patient_key

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
#: columns PostgreSQL fills with now() / identities: the transaction's time differs, the values do not
VOLATILE = {"updated_at", "received_at", "changed_at", "created_at", "txid", "id"}


@pytest.fixture
async def two_registers(infra) -> AsyncIterator[tuple[Deps, Deps]]:
    """Two empty migrated registers, one handled fact by fact and one in chunks, on a fixed clock."""
    from tools.migrations import migrate

    names = [f"flk_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    admin = await asyncpg.connect(infra.dsn("admin", database="postgres"))
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}" OWNER "{infra.postgres_app_user}"')
    finally:
        await admin.close()
    pools = []
    try:
        for name in names:
            await migrate(infra.dsn("app", database=name))
            pools.append(await asyncpg.create_pool(infra.dsn("app", database=name), min_size=1, max_size=3))
        deps = [Deps(pool=pool, profile_name="national", timezone="Europe/Stockholm", clock=lambda: NOW)
                for pool in pools]
        yield deps[0], deps[1]
    finally:
        for pool in pools:
            await pool.close()
        admin = await asyncpg.connect(infra.dsn("admin", database="postgres"))
        try:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def fact(event_type: str, data: dict, message_id: str | None = None) -> Message:
    return Message(message_id or str(uuid.uuid4()), event_type, data, NOW)


def risk(key: str, rub: int, run: int = 1) -> Message:
    return fact("risk.assessed.v1", {"assessment_id": f"ACG-{run}-{key[-8:]}", "patient_key": key, "rub": rub,
                                     "acg_version": "12.0", "lookback_months": 12, "computed_at": rfc3339(NOW)})


def residence(key: str, sabo_from: date) -> Message:
    return fact("residence.recorded.v1", {"residence_id": f"SABO-{key[-8:]}", "patient_key": key,
                                          "sabo_from": sabo_from.isoformat(), "sabo_to": None,
                                          "municipality_code": "1980", "recorded_at": rfc3339(NOW)})


def updated(key: str, **fields) -> Message:
    return fact("person.updated.v1", {"patient_key": key, "status": "folkbokford", "updated_at": rfc3339(NOW),
                                      **fields})


async def fact_by_fact(messages: list[Message], deps: Deps) -> dict[str, str]:
    """The reference: one transaction per fact (the consumer's ``handle``); the dead letters' reasons."""
    dead: dict[str, str] = {}
    for msg in messages:
        try:
            await handle_message(msg, deps)
        except InvalidMessage as exc:
            dead[msg.message_id] = str(exc)
    return dead


async def in_chunks(messages: list[Message], deps: Deps, size: int,
                    handlers=FACT_HANDLERS) -> dict[str, str]:
    """As the facts consumer does it: a chunk in one transaction; what it leaves over, or the whole
    chunk when the database refuses it, one fact at a time."""
    dead: dict[str, str] = {}
    for start in range(0, len(messages), size):
        chunk = messages[start:start + size]
        try:
            alone = [chunk[i] for i in (await handle_fact_chunk(chunk, deps, handlers=handlers)).leftover]
        except Exception:  # noqa: BLE001 - the consumer handles the chunk again one by one
            alone = chunk
        dead.update(await fact_by_fact(alone, deps))
    return dead


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    return value


async def register(deps: Deps) -> dict[str, list]:
    """Every row of the register, without what now() and identities fill in; the outbox in its order."""
    tables = ["person", "risk_assessment", "sabo_residence", "listing", "flk_assignment", "fast_vardkontakt",
              "flk_decline", "care_unit", "unit_contract", "practitioner_role", "doctor_list", "inbox", "history"]
    async with deps.pool.acquire() as conn:
        found = {}
        for table in tables:
            rows = [_stable(json.loads(r["row"])) for r in
                    await conn.fetch(f"SELECT to_jsonb(t) AS row FROM listing.{table} t")]
            for row in rows:
                if isinstance(row.get("old_row"), dict):
                    row["old_row"] = _stable(row["old_row"])
            found[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
        found["outbox"] = [(r["event_type"], json.loads(r["data"]), r["event_time"]) for r in
                           await conn.fetch("SELECT event_type, data, event_time FROM listing.outbox ORDER BY id")]
    return found


async def given(deps: Deps, key_listed: str) -> None:
    """A unit, its doctor, and one person listed there with an FLK (commands, one transaction each)."""
    from services.listing.service_layer.handlers import COMMAND_HANDLERS

    await fact_by_fact([fact("care_unit.contracted.v1", unit_register(UNIT_A, UNIT_A_NAME), "unit-a"),
                        fact("practitioner_role.started.v1", role_started(ROLE_1, DOCTOR_1, UNIT_A), "role-1"),
                        fact("person.registered.v1", person(key_listed), "listed-registered")], deps)
    request = list_request(key_listed, command_id="6f1c2d7e-0000-4000-8000-000000000001",
                           requested_at=rfc3339(NOW))
    assign = {"command_id": "6f1c2d7e-0000-4000-8000-000000000002", "requested_at": rfc3339(NOW), "channel": "ehr",
              "patient_key": key_listed, "care_unit_id": UNIT_A, "practitioner_id": DOCTOR_1,
              "effective_date": (START + timedelta(days=1)).isoformat()}
    for command_type, data in (("listing.request.v1", request), ("fast_lakarkontakt.assign.v1", assign)):
        await handle_message(Message(data["command_id"], command_type, data, NOW), deps, handlers=COMMAND_HANDLERS)


def mixed_facts(keys: list[str]) -> list[Message]:
    """Good, bad, repeated facts, several for one person, decisions (P1) among the plain ones."""
    listed, new, protected, minor, unknown, bad, moved, twice, resident = keys
    registered = fact("person.registered.v1", person(new, birth_date="1960-05-01"))
    first_risk = risk(new, 2)
    return [
        registered,
        fact("person.registered.v1", person(protected, protected_identity=True)),
        first_risk,
        fact("person.registered.v1", person(minor, birth_date="2015-03-01", guardian_keys=[new, protected])),
        updated(new, region_code="20", guardian_keys=[]),  # the same person again: after its registration
        first_risk,  # redelivered in the same chunk: counted once
        risk(unknown, 4),
        residence(protected, START),  # SÄBO: a decision about the flag (direct, under a savepoint)
        updated(listed, status="deceased", status_date=(START + timedelta(days=10)).isoformat()),  # P1: ends
        risk(listed, 5, run=2),
        fact("person.registered.v1", person(bad, birth_date="1850-01-01")),  # out of range: dead letter
        risk(bad, 3),  # after its person's bad fact: must wait for it, then applies
        fact("person.registered.v1", person(moved)),
        updated(moved, protected_identity=True),  # a decision right after a planned registration
        updated(moved, status="emigrated", status_date=START.isoformat()),
        updated(moved, status="emigrated", region_code="08"),  # already emigrated: a plain change
        updated(moved, status="folkbokford", region_code="07"),  # moved back in (a planned update after it)
        risk(new, 1, run=2),
        fact("person.registered.v1", person(twice)),
        updated(twice, region_code="20"),
        updated(twice, region_code="21", guardian_keys=[]),  # two plain updates in a row: two history rows
        registered,  # redelivered after other facts of its person: changes nothing
        fact("person.registered.v1", person(resident)),
        risk(resident, 3),
        residence(resident, START),  # reads the registration still planned: it is written first
    ]


async def test_a_chunk_of_mixed_facts_gives_the_register_outbox_and_dead_letters_of_fact_by_fact(two_registers):
    reference, chunked = two_registers
    keys = [a_patient_key(3000 + i) for i in range(9)]
    for deps in two_registers:
        await given(deps, keys[0])
    messages = mixed_facts(keys)

    expected_dead = await fact_by_fact(messages, reference)
    dead = await in_chunks(messages, chunked, size=len(messages))

    assert dead == expected_dead and len(dead) == 1 and "birth_date" in next(iter(dead.values()))
    expected, found = await register(reference), await register(chunked)
    assert found == expected
    assert [e[0] for e in expected["outbox"]].count("listing.ended.v1") == 1  # the P1 decision was made
    assert len(expected["risk_assessment"]) == 6
    assert {r["patient_key"]: r["home_region"] for r in expected["person"]}[keys[6]] == "07"


async def test_a_fact_the_database_refuses_rolls_its_chunk_back_and_the_others_still_apply_one_by_one(
        two_registers):
    """A guardian who is the person itself passes the contract, not the register's CHECK: the chunk's
    planned rows are refused together, and fact by fact only that one is dead-lettered."""
    reference, chunked = two_registers
    keys = [a_patient_key(4000 + i) for i in range(9)]
    for deps in two_registers:
        await given(deps, keys[0])
    messages = mixed_facts(keys)
    messages.insert(3, fact("person.registered.v1", person(keys[5], guardian_keys=[keys[5]])))

    expected_dead = await fact_by_fact(messages, reference)
    dead = await in_chunks(messages, chunked, size=len(messages))

    assert dead == expected_dead and len(dead) == 2
    assert any("person_guardian_keys_check" in reason or "constraint" in reason for reason in dead.values())
    assert await register(chunked) == await register(reference)


@pytest.mark.parametrize("size", [1, 3, 7])
async def test_any_chunk_size_gives_the_same_register(two_registers, size):
    reference, chunked = two_registers
    keys = [a_patient_key(5000 + i) for i in range(9)]
    for deps in two_registers:
        await given(deps, keys[0])
    messages = mixed_facts(keys)

    assert await in_chunks(messages, chunked, size=size) == await fact_by_fact(messages, reference)
    assert await register(chunked) == await register(reference)


def failing_after_writing(failures: set[tuple[str, str]]) -> dict:
    """The real fact handlers, then an unexpected error for the given (fact type, person): a bug after
    the fact's rows were planned or written; none of them may stay."""
    def wrap(event_type, handler):
        async def handle(msg, deps):
            outcome = await handler(msg, deps)
            if (event_type, msg.data.get("patient_key")) in failures:
                raise RuntimeError("a bug")
            return outcome
        return handle

    return {t: wrap(t, h) for t, h in FACT_HANDLERS.items()}


async def test_a_fact_failing_after_its_writes_is_taken_back_and_left_over_with_its_persons_later_facts(
        two_registers):
    reference, chunked = two_registers
    keys = [a_patient_key(7000 + i) for i in range(9)]
    for deps in two_registers:
        await given(deps, keys[0])
    messages = mixed_facts(keys)
    new, protected = keys[1], keys[2]
    failing = failing_after_writing({("person.registered.v1", new), ("residence.recorded.v1", protected)})

    result = await handle_fact_chunk(messages, chunked, handlers=failing)

    of = {i: m.data["patient_key"] for i, m in enumerate(messages)}
    assert {of[i] for i in result.leftover} == {new, protected, keys[5]}  # keys[5]: the out-of-range fact
    assert [i for i in result.leftover if of[i] == new] == [i for i in of if of[i] == new]
    async with chunked.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM listing.person WHERE patient_key = $1", new) == 0
        assert await conn.fetchval("SELECT count(*) FROM listing.sabo_residence WHERE patient_key = $1",
                                   protected) == 0
    # the consumer then handles what was left over alone, in arrival order, with the real handlers
    dead = await fact_by_fact([messages[i] for i in result.leftover], chunked)

    assert dead == await fact_by_fact(messages, reference)
    assert await register(chunked) == await register(reference)


class Crash(BaseException):
    """The process dying in the middle of a chunk (not an error a fact could be blamed for)."""


def crashing_after(n: int) -> Callable:
    seen = [0]

    def wrap(handler):
        async def handle(msg, deps):
            outcome = await handler(msg, deps)
            seen[0] += 1
            if seen[0] == n:
                raise Crash()
            return outcome
        return handle

    return {t: wrap(h) for t, h in FACT_HANDLERS.items()}


async def test_a_crash_in_the_middle_of_a_chunk_loses_nothing_and_applies_nothing_twice_after_redelivery(
        two_registers):
    reference, chunked = two_registers
    keys = [a_patient_key(6000 + i) for i in range(9)]
    for deps in two_registers:
        await given(deps, keys[0])
    messages = mixed_facts(keys)
    expected_dead = await fact_by_fact(messages, reference)
    before = await register(chunked)

    # the first chunk commits, the second dies after some of its facts (planned and direct ones)
    assert not (await handle_fact_chunk(messages[:4], chunked)).leftover
    with pytest.raises(Crash):
        await handle_fact_chunk(messages[4:], chunked, handlers=crashing_after(6))
    after_crash = await register(chunked)
    assert len(after_crash["inbox"]) == len(before["inbox"]) + 4  # the committed chunk only
    assert after_crash["outbox"] == before["outbox"]

    # restarted: the uncommitted offsets deliver everything again, the committed chunk included
    dead = await in_chunks(messages, chunked, size=10)

    assert dead == expected_dead
    assert await register(chunked) == await register(reference)


async def test_facts_published_on_kafka_are_applied_in_chunks_and_a_poison_fact_is_dead_lettered_alone(listing):
    keys = [listing.new_patient_key() for _ in range(4)]
    poison = listing.new_patient_key()
    for key in keys[:2]:
        await listing.publish("person.registered.v1", person(key))
    await listing.publish("person.registered.v1", person(poison, birth_date="1850-01-01"))
    await listing.publish("risk.assessed.v1", risk(poison, 2).data)  # waits for its person's fact, then applies
    for key in keys[2:]:
        await listing.publish("person.registered.v1", person(key))
        await listing.publish("risk.assessed.v1", risk(key, 3).data)

    async def all_applied():
        persons = await listing.fetch("SELECT patient_key FROM listing.person WHERE patient_key = ANY($1::text[])",
                                      keys + [poison])
        risks = await listing.fetch("SELECT patient_key FROM listing.risk_assessment")
        return (len(persons), len(risks)) if len(persons) == 4 and len(risks) == 3 else None

    assert await listing.eventually(all_applied) == (4, 3)
    found = await listing.dead_letters("person.registered.v1")
    assert len(found) == 1
    assert "birth_date must be between" in dict(found[0].headers)[REASON].decode()
    persons = await listing.fetch("SELECT count(*) AS n FROM listing.person WHERE patient_key = $1", poison)
    assert persons[0]["n"] == 0
