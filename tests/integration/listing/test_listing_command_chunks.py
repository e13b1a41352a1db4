"""Commands from Kafka in chunks (one transaction per chunk, service_layer/chunks.py) keep every
guarantee of one transaction per command: a person's commands in order, a command id counted
once, rejections with their outcome, a failing command taken back without touching the others."""
from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from listing_harness import (
    DOCTOR_1,
    START,
    UNIT_A,
    UNIT_A_NAME,
    UNIT_B,
    assign_flk,
    command,
    list_request,
    role_started,
    unit_register,
)

from flk.events.dlq import REASON
from services.listing.adapters.event_writers import INSERT_LISTING
from services.listing.service_layer.chunks import handle_chunk
from services.listing.service_layer.handlers import COMMAND_HANDLERS, Message

UNKNOWN_UNIT = "SE2321000016-VCZ9"


def message(command_type: str, data: dict) -> Message:
    return Message(data["command_id"], command_type, data, datetime.now(timezone.utc))


def end_listing(key: str, on) -> dict:
    return {**command(patient_key=key, care_unit_id=UNIT_A, effective_date=on.isoformat()), "reason": "ended_by_patient"}


def failing_after_deciding(patient_key: str):
    """The real listing handler, then an unexpected error for one patient (a bug after the writes
    were planned: none of them may reach the database)."""
    real = COMMAND_HANDLERS["listing.request.v1"]

    async def handler(msg, deps):
        outcome = await real(msg, deps)
        if msg.data["patient_key"] == patient_key:
            raise RuntimeError("a bug")
        return outcome

    return {**COMMAND_HANDLERS, "listing.request.v1": handler}


async def open_listings(listing, keys: list[str]) -> dict[str, str]:
    rows = await listing.fetch("SELECT patient_key, care_unit_id FROM listing.listing "
                               "WHERE patient_key = ANY($1::text[]) AND end_on IS NULL", keys)
    return {r["patient_key"]: r["care_unit_id"] for r in rows}


async def outbox_types(listing, key: str) -> list[str]:
    rows = await listing.fetch("SELECT event_type FROM listing.outbox WHERE data->>'patient_key' = $1 ORDER BY id", key)
    return [r["event_type"] for r in rows]


async def test_a_chunk_commits_accepted_and_rejected_commands_and_takes_back_a_failing_one(listing):
    await listing.given_region()
    accepted, rejected, failing = [await listing.given_person() for _ in range(3)]
    chunk = [message("listing.request.v1", list_request(accepted)),
             message("listing.request.v1", list_request(rejected, unit=UNKNOWN_UNIT)),
             message("listing.request.v1", list_request(failing))]

    result = await handle_chunk(chunk, listing.app.state.runtime.deps, handlers=failing_after_deciding(failing))

    assert result.leftover == [2]
    assert result.outcomes[0].status == "accepted"
    assert result.outcomes[1].status == "rejected"
    assert result.outcomes[1].rejection["rule_id"] == "L3"
    assert await open_listings(listing, [accepted, rejected, failing]) == {accepted: UNIT_A}
    assert await outbox_types(listing, accepted) == ["listing.started.v1"]
    assert await outbox_types(listing, rejected) == ["listing.rejected.v1"]
    assert await outbox_types(listing, failing) == []
    inbox = await listing.fetch("SELECT message_id, outcome FROM listing.inbox WHERE message_id = ANY($1::text[])",
                                [m.message_id for m in chunk])
    statuses = {r["message_id"]: json.loads(r["outcome"])["status"] for r in inbox}
    assert statuses == {chunk[0].message_id: "accepted", chunk[1].message_id: "rejected"}


async def test_a_persons_commands_in_one_chunk_apply_in_order(listing):
    await listing.given_region()
    keys = [await listing.given_person() for _ in range(3)]
    chunk = [message("listing.request.v1", list_request(key)) for key in keys]
    chunk += [message("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=DOCTOR_1)) for key in keys]
    chunk += [message("listing.end.v1", end_listing(key, on=START + timedelta(days=5))) for key in keys[:2]]

    result = await handle_chunk(chunk, listing.app.state.runtime.deps)

    assert result.leftover == []
    assert [result.outcomes[i].status for i in range(len(chunk))] == ["accepted"] * len(chunk)
    for key in keys[:2]:
        events = await outbox_types(listing, key)
        assert events[:2] == ["listing.started.v1", "fast_lakarkontakt.assigned.v1"]
        assert sorted(events[2:]) == ["fast_lakarkontakt.ended.v1", "listing.ended.v1"]
    assert await outbox_types(listing, keys[2]) == ["listing.started.v1", "fast_lakarkontakt.assigned.v1"]
    assert await open_listings(listing, keys) == {keys[2]: UNIT_A}
    ended = await listing.fetch("SELECT l.end_reason AS listing_end, a.end_reason AS flk_end FROM listing.listing l "
                                "JOIN listing.flk_assignment a USING (patient_key) WHERE l.patient_key = ANY($1::text[])",
                                keys)
    assert sorted((r["listing_end"] or "-", r["flk_end"] or "-") for r in ended) == [
        ("-", "-")] + [("ended_by_patient", "listing_ended")] * 2


async def test_the_same_command_twice_in_one_chunk_changes_state_once_and_answers_the_first_outcome(listing):
    await listing.given_region()
    key = await listing.given_person()
    request = list_request(key)
    chunk = [message("listing.request.v1", request), message("listing.request.v1", dict(request))]

    result = await handle_chunk(chunk, listing.app.state.runtime.deps)

    assert result.outcomes[0].status == "accepted" and not result.outcomes[0].replayed
    assert result.outcomes[1].replayed and result.outcomes[1].events == result.outcomes[0].events
    rows = await listing.fetch("SELECT count(*) AS n FROM listing.listing WHERE patient_key = $1", key)
    assert rows[0]["n"] == 1
    assert await outbox_types(listing, key) == ["listing.started.v1"]


async def test_a_command_already_handled_by_rest_is_answered_from_the_inbox_in_a_chunk(listing):
    await listing.given_region()
    key = await listing.given_person()
    request = list_request(key)
    assert (await listing.post("listing.request.v1", request)).status_code == 200

    result = await handle_chunk([message("listing.request.v1", request)], listing.app.state.runtime.deps)

    assert result.outcomes[0].replayed and result.outcomes[0].status == "accepted"
    assert await outbox_types(listing, key) == ["listing.started.v1"]


async def test_after_a_failing_command_the_later_commands_of_its_person_are_left_over_in_order(listing):
    await listing.given_region()
    failing, other = await listing.given_person(), await listing.given_person()
    chunk = [message("listing.request.v1", list_request(failing)),
             message("listing.request.v1", list_request(other)),
             message("fast_lakarkontakt.assign.v1", assign_flk(failing, practitioner_id=DOCTOR_1))]

    result = await handle_chunk(chunk, listing.app.state.runtime.deps, handlers=failing_after_deciding(failing))

    assert result.leftover == [0, 2]
    assert await open_listings(listing, [failing, other]) == {other: UNIT_A}
    assert await outbox_types(listing, failing) == []


async def test_L7_two_persons_in_one_chunk_at_a_unit_with_one_place_left_only_one_is_listed(listing):
    await listing.given_region()
    await listing.fact("care_unit.contracted.v1", unit_register(
        UNIT_A, UNIT_A_NAME, listing_limit={"max_listed": 1, "valid_from": START.isoformat(), "valid_to": None}))
    first, second = await listing.given_person(), await listing.given_person()
    chunk = [message("listing.request.v1", list_request(first)), message("listing.request.v1", list_request(second))]

    result = await handle_chunk(chunk, listing.app.state.runtime.deps)

    assert [result.outcomes[0].status, result.outcomes[1].status] == ["accepted", "rejected"]
    assert result.outcomes[1].rejection["rule_id"] == "L7"
    assert await open_listings(listing, [first, second]) == {first: UNIT_A}


async def test_a_poison_command_among_others_on_kafka_is_dead_lettered_alone_and_the_others_apply(listing):
    await listing.given_region()
    keys = [await listing.given_person() for _ in range(3)]
    poison = await listing.given_person()
    for key in keys[:2]:
        await listing.publish("listing.request.v1", list_request(key))
    # valid against the contract, never storable (NUL): handled alone after its chunk, then dead-lettered
    await listing.publish("listing.request.v1", list_request(poison, requested_by="SE2321000016-U\x00"))
    await listing.publish("listing.request.v1", list_request(keys[2]))

    async def all_listed():
        found = await open_listings(listing, keys)
        return found if len(found) == 3 else None

    assert await listing.eventually(all_listed) == {key: UNIT_A for key in keys}
    found = await listing.dead_letters("listing.request.v1")
    assert len(found) == 1
    assert "NUL" in dict(found[0].headers)[REASON].decode()
    assert await open_listings(listing, [poison]) == {}


async def test_L1_a_chunk_and_a_rest_call_listing_the_same_person_at_once_exactly_one_wins(listing):
    await listing.given_region()
    key = await listing.given_person()
    by_kafka, by_rest = list_request(key), list_request(key)  # two EHRs, two command ids

    result, answer = await asyncio.gather(
        handle_chunk([message("listing.request.v1", by_kafka)], listing.app.state.runtime.deps),
        listing.post("listing.request.v1", by_rest))

    statuses = sorted([result.outcomes[0].status, "accepted" if answer.status_code == 200 else "rejected"])
    assert statuses == ["accepted", "rejected"]
    loser = result.outcomes[0].rejection if result.outcomes[0].status == "rejected" else answer.json()["rejection"]
    assert loser["rule_id"] == "L1"
    rows = await listing.fetch("SELECT count(*) AS n FROM listing.listing WHERE patient_key = $1", key)
    assert rows[0]["n"] == 1


async def test_a_chunk_the_database_refuses_is_rolled_back_whole_and_raises(listing):
    await listing.given_region()
    other, refused = await listing.given_person(), await listing.given_person()
    real = COMMAND_HANDLERS["listing.request.v1"]

    async def second_open_listing(msg, deps):
        """A bug that writes a second open listing: only the database's L1 constraint stops it."""
        outcome = await real(msg, deps)
        if msg.data["patient_key"] == refused:
            async with deps.uow() as uow:
                await uow.repo.execute(INSERT_LISTING, str(uuid.uuid4()), refused, UNIT_B, START, START,
                                       "active_choice", "ehr", "person", None, msg.message_id)
        return outcome

    chunk = [message("listing.request.v1", list_request(other)), message("listing.request.v1", list_request(refused))]
    with pytest.raises((asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError)):  # L1 constraints
        await handle_chunk(chunk, listing.app.state.runtime.deps,
                           handlers={**COMMAND_HANDLERS, "listing.request.v1": second_open_listing})

    assert await open_listings(listing, [other, refused]) == {}
    assert await outbox_types(listing, other) == []
    inbox = await listing.fetch("SELECT count(*) AS n FROM listing.inbox WHERE message_id = ANY($1::text[])",
                                [m.message_id for m in chunk])
    assert inbox[0]["n"] == 0


async def test_F5_a_change_of_coordinating_flk_decided_in_a_chunk_is_published_with_its_doctor(listing):
    """The coordinating FLK moves to an assignment the same command makes: in a chunk that assignment
    is still a planned row when the change is written, and the change must be published all the same."""
    second_doctor = "SE2321000016-L003"
    await listing.given_region()
    await listing.fact("practitioner_role.started.v1", role_started("role-l003", second_doctor, UNIT_A))
    key = await listing.given_person()
    assert (await listing.post("listing.request.v1", list_request(key))).status_code == 200
    assert (await listing.post("fast_lakarkontakt.assign.v1",
                               assign_flk(key, practitioner_id=DOCTOR_1))).json()["status"] == "accepted"
    kronoberg = replace(listing.app.state.runtime.deps, profile_name="kronoberg")  # several FLKs (seed 003)

    result = await handle_chunk([message("fast_lakarkontakt.assign.v1", assign_flk(
        key, practitioner_id=second_doctor, coordinating=True, effective_date=(START + timedelta(days=2)).isoformat()))],
        kronoberg)

    assert result.outcomes[0].status == "accepted", result.outcomes[0].rejection
    changed = await listing.fetch("SELECT data FROM listing.outbox WHERE event_type = "
                                  "'fast_lakarkontakt.coordinating_changed.v1' AND data->>'patient_key' = $1", key)
    assert [json.loads(r["data"])["practitioner_id"] for r in changed] == [second_doctor]
    coordinating = await listing.fetch("SELECT practitioner_id FROM listing.flk_assignment "
                                       "WHERE patient_key = $1 AND end_on IS NULL AND coordinating", key)
    assert [r["practitioner_id"] for r in coordinating] == [second_doctor]


async def test_L7_a_filial_registered_before_its_main_unit_shares_the_main_units_limit_in_a_chunk(listing):
    """Seed 004: a filial (underenhet) counts toward its main unit's listing limit, on the REST path and
    in a chunk; its register fact may arrive before the main unit's."""
    filial = "SE2321000016-VCA1F"
    await listing.fact("care_unit.contracted.v1", unit_register(
        filial, "Vårdcentralen Norberg, filial Kärrgruvan", main_unit_id=UNIT_A, filial_kind="distriktskoterskefilial",
        fictive_lists=[]))
    await listing.fact("care_unit.contracted.v1", unit_register(
        UNIT_A, UNIT_A_NAME, listing_limit={"max_listed": 2, "valid_from": START.isoformat(), "valid_to": None}))
    first, second, third = [await listing.given_person() for _ in range(3)]
    assert (await listing.post("listing.request.v1", list_request(first, unit=filial))).json()["status"] == "accepted"

    result = await handle_chunk([message("listing.request.v1", list_request(second, unit=UNIT_A)),
                                 message("listing.request.v1", list_request(third, unit=filial))],
                                listing.app.state.runtime.deps)

    assert [result.outcomes[0].status, result.outcomes[1].status] == ["accepted", "rejected"]
    assert result.outcomes[1].rejection["rule_id"] == "L7"
    assert await open_listings(listing, [first, second, third]) == {first: filial, second: UNIT_A}
    rows = await listing.fetch("SELECT hsa_id, main_unit_id, filial_kind FROM listing.care_unit WHERE hsa_id = $1",
                               filial)
    assert [tuple(r) for r in rows] == [(filial, UNIT_A, "distriktskoterskefilial")]


async def test_a_filial_of_a_filial_is_refused_with_its_reason(listing):
    await listing.fact("care_unit.contracted.v1", unit_register(UNIT_B, "Vårdcentralen Sala", main_unit_id=UNIT_A,
                                                                 fictive_lists=[]))
    with pytest.raises(Exception, match="one level only"):
        await listing.fact("care_unit.contracted.v1", unit_register(
            "SE2321000016-VCB2F", "Filial av en filial", main_unit_id=UNIT_B, fictive_lists=[]))
