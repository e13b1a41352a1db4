"""Commands and facts through the real broker: applied once, events out through the outbox."""
from __future__ import annotations

import asyncio
import json
import uuid

from datetime import timedelta

from listing_harness import (
    DOCTOR_1,
    ROLE_1,
    START,
    TODAY,
    UNIT_A,
    UNIT_A_NAME,
    assign_flk,
    command,
    list_request,
    rfc3339,
    role_started,
    running_listing,
    unit_register,
)

from flk.events.dlq import REASON
from flk.events.registry import registry
from tests.support.builders import NURSE_1


async def test_a_listing_command_published_to_kafka_is_applied_and_its_event_comes_out_of_the_outbox(listing):
    await listing.given_region()
    key = await listing.given_person()
    request = list_request(key)

    await listing.publish("listing.request.v1", request)

    events = await listing.published("listing.started.v1", lambda es: any(e.data["patient_key"] == key for e in es))
    started = [e for e in events if e.event_type == "listing.started.v1" and e.data["patient_key"] == key]
    assert len(started) == 1
    assert started[0].data["care_unit_id"] == UNIT_A
    assert started[0].data["command_id"] == request["command_id"]
    rows = await listing.fetch("SELECT care_unit_id FROM listing.listing WHERE patient_key = $1 AND end_on IS NULL", key)
    assert [r["care_unit_id"] for r in rows] == [UNIT_A]
    # the relay marks a row published after the broker's ack, so the event can be read a moment before that
    for _ in range(100):
        unpublished = await listing.fetch("SELECT count(*) AS n FROM listing.outbox WHERE published_at IS NULL")
        if unpublished[0]["n"] == 0:
            break
        await asyncio.sleep(0.1)
    assert unpublished[0]["n"] == 0


async def test_F1_nurse_as_flk_is_refused_as_not_a_doctor_on_the_kafka_path(listing):
    await listing.given_region()
    await listing.fact("practitioner_role.started.v1", role_started(
        "role-nurse-1", NURSE_1, UNIT_A, profession="sjuksköterska", specialty=None))
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key))

    await listing.publish("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=NURSE_1))

    events = await listing.published("listing.rejected.v1", lambda es: any(
        e.event_type == "listing.rejected.v1" and e.data["patient_key"] == key for e in es))
    [rejected] = [e for e in events if e.event_type == "listing.rejected.v1" and e.data["patient_key"] == key]
    assert (rejected.data["rule_id"], rejected.data["reason_code"]) == ("F1", "not_legitimerad_lakare")


async def test_the_same_command_delivered_twice_changes_state_once_and_publishes_one_event(listing):
    await listing.given_region()
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key))
    assignment = assign_flk(key, practitioner_id=DOCTOR_1)

    # twice through Kafka, with different CloudEvents ids (an EHR retrying), and once more by REST
    await listing.publish("fast_lakarkontakt.assign.v1", assignment, event_id=str(uuid.uuid4()))
    await listing.publish("fast_lakarkontakt.assign.v1", assignment, event_id=str(uuid.uuid4()))
    again = await listing.post("fast_lakarkontakt.assign.v1", assignment)

    assert again.status_code == 200
    events = await listing.published(
        "fast_lakarkontakt.assigned.v1",
        lambda es: sum(e.event_type == "fast_lakarkontakt.assigned.v1" for e in es) >= 2, timeout_s=6)
    assigned = [e for e in events if e.event_type == "fast_lakarkontakt.assigned.v1"]
    assert len(assigned) == 1
    rows = await listing.fetch("SELECT count(*) AS n FROM listing.flk_assignment WHERE patient_key = $1", key)
    assert rows[0]["n"] == 1
    inbox = await listing.fetch("SELECT count(*) AS n FROM listing.inbox WHERE message_id = $1",
                                assignment["command_id"])
    assert inbox[0]["n"] == 1


async def test_F8_role_ended_on_the_roster_ends_the_doctors_assignments_with_reason_doctor_left(listing):
    await listing.given_region()
    keys = [await listing.given_person() for _ in range(2)]
    for key in keys:
        assert (await listing.post("listing.request.v1", list_request(key))).status_code == 200
        assert (await listing.post("fast_lakarkontakt.assign.v1",
                                   assign_flk(key, practitioner_id=DOCTOR_1))).status_code == 200

    await listing.publish("practitioner_role.ended.v1", {
        "role_id": ROLE_1, "practitioner_id": DOCTOR_1, "care_unit_id": UNIT_A, "ended_on": TODAY.isoformat()})

    async def ended():
        rows = await listing.fetch(
            "SELECT end_reason FROM listing.flk_assignment WHERE patient_key = ANY($1::text[]) AND end_on IS NOT NULL",
            keys)
        return rows if len(rows) == 2 else None

    rows = await listing.eventually(ended)
    assert rows and {r["end_reason"] for r in rows} == {"doctor_left"}
    still_listed = await listing.fetch(
        "SELECT count(*) AS n FROM listing.listing WHERE patient_key = ANY($1::text[]) AND end_on IS NULL", keys)
    assert still_listed[0]["n"] == 2  # F8: listings stay, it is not a switch
    events = await listing.published(
        "fast_lakarkontakt.ended.v1",
        lambda es: sum(e.event_type == "fast_lakarkontakt.ended.v1" for e in es) >= 2)
    assert sorted(e.data["reason"] for e in events if e.event_type == "fast_lakarkontakt.ended.v1") == \
        ["doctor_left", "doctor_left"]


async def test_F8_a_backdated_flk_arriving_after_its_doctor_left_is_recorded_ended_on_either_path(listing):
    """The roster's departure was handled first; the EHR's assignment, dated before it, comes later — by
    Kafka (a chunk of commands) and by REST (one decision). The register and the published events are
    what they would be in the other order: the FLK from its date to the role's end, ``doctor_left``."""
    await listing.given_region()
    by_kafka, by_rest = [await listing.given_person() for _ in range(2)]
    for key in (by_kafka, by_rest):
        assert (await listing.post("listing.request.v1", list_request(key))).status_code == 200
    left_on = START + timedelta(days=10)
    await listing.publish("practitioner_role.ended.v1", {
        "role_id": ROLE_1, "practitioner_id": DOCTOR_1, "care_unit_id": UNIT_A, "ended_on": left_on.isoformat()})

    async def role_ended():
        rows = await listing.fetch("SELECT end_on FROM listing.practitioner_role WHERE role_id = $1", ROLE_1)
        return rows and rows[0]["end_on"] == left_on

    assert await listing.eventually(role_ended)
    await listing.publish("fast_lakarkontakt.assign.v1", assign_flk(by_kafka, practitioner_id=DOCTOR_1))
    assert (await listing.post("fast_lakarkontakt.assign.v1",
                               assign_flk(by_rest, practitioner_id=DOCTOR_1))).status_code == 200

    async def recorded():
        rows = await listing.fetch(
            "SELECT patient_key, start_on, end_on, end_reason FROM listing.flk_assignment "
            "WHERE patient_key = ANY($1::text[]) ORDER BY patient_key", [by_kafka, by_rest])
        return rows if len(rows) == 2 else None

    rows = await listing.eventually(recorded)
    assert rows and {(r["start_on"], r["end_on"], r["end_reason"]) for r in rows} == {
        (START + timedelta(days=1), left_on, "doctor_left")}
    events = await listing.published("fast_lakarkontakt.ended.v1", lambda es: {
        e.data["patient_key"] for e in es if e.event_type == "fast_lakarkontakt.ended.v1"} >= {by_kafka, by_rest})
    for key in (by_kafka, by_rest):
        mine = [e for e in events if e.data.get("patient_key") == key and e.event_type.startswith("fast_lakarkontakt.")]
        assert [e.event_type for e in mine] == ["fast_lakarkontakt.assigned.v1", "fast_lakarkontakt.ended.v1"]
        assert mine[1].data["reason"] == "doctor_left" and mine[1].data["ended_on"] == left_on.isoformat()
        assert mine[0].data["assignment_id"] == mine[1].data["assignment_id"]


async def test_P1_a_death_in_the_population_register_ends_the_listing_and_the_fast_lakarkontakt(listing):
    await listing.given_region()
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key))
    await listing.post("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=DOCTOR_1))

    await listing.publish("person.updated.v1", {"patient_key": key, "status": "deceased",
                                                "status_date": TODAY.isoformat(), "updated_at": rfc3339()})

    async def ended():
        rows = await listing.fetch("SELECT end_reason FROM listing.listing WHERE patient_key = $1 AND end_on IS NOT NULL",
                                   key)
        return rows

    rows = await listing.eventually(ended)
    assert [r["end_reason"] for r in rows] == ["deceased"]
    flk = await listing.fetch("SELECT end_reason FROM listing.flk_assignment WHERE patient_key = $1", key)
    assert [r["end_reason"] for r in flk] == ["deceased"]
    status = await listing.fetch("SELECT population_status FROM listing.person WHERE patient_key = $1", key)
    assert status[0]["population_status"] == "deceased"
    history = await listing.fetch("SELECT count(*) AS n FROM listing.listing WHERE patient_key = $1", key)
    assert history[0]["n"] == 1  # kept for statistics, never deleted


async def test_P1_a_death_ends_the_fast_vardkontakt_and_its_end_is_published(listing):
    """Downstream, a fast vårdkontakt must not outlive the patient: its end is on listing.events.v1."""
    chef, nurse = "SE2321000016-C001", "SE2321000016-S001"
    await listing.given_region()
    await listing.fact("care_unit.contracted.v1", unit_register(UNIT_A, UNIT_A_NAME, verksamhetschef_id=chef))
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key))
    appointed = await listing.post("fast_vardkontakt.appoint.v1", command(
        patient_key=key, care_unit_id=UNIT_A, practitioner_id=nurse, profession="sjuksköterska", requested_by=chef,
        effective_date=(START + timedelta(days=1)).isoformat()))
    assert appointed.json()["status"] == "accepted", appointed.json()

    await listing.publish("person.updated.v1", {"patient_key": key, "status": "deceased",
                                                "status_date": TODAY.isoformat(), "updated_at": rfc3339()})

    async def ended():
        return await listing.fetch("SELECT data FROM listing.outbox WHERE event_type = 'fast_vardkontakt.ended.v1' "
                                   "AND data->>'patient_key' = $1", key)

    (row,) = await listing.eventually(ended)
    data = json.loads(row["data"])
    assert (data["practitioner_id"], data["care_unit_id"], data["ended_on"], data["reason"]) == (
        nurse, UNIT_A, TODAY.isoformat(), "deceased")
    registered = await listing.fetch("SELECT appointment_id::text AS id, end_on FROM listing.fast_vardkontakt "
                                     "WHERE patient_key = $1", key)
    assert [(r["id"], r["end_on"]) for r in registered] == [(data["appointment_id"], TODAY)]


async def test_an_invalid_command_goes_to_the_dead_letter_topic_with_its_reason(listing):
    topic = registry().topic_for("listing.request.v1").name
    await listing.producer.send_and_wait(
        listing.prefix + topic, key=b"pk1_notavalidkey", value=json.dumps({"command_id": "x"}).encode(),
        headers=[("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"urn:test"),
                 ("ce_type", b"se.flk.listing.request.v1")])
    found = await listing.dead_letters("listing.request.v1")
    assert len(found) == 1
    reason = dict(found[0].headers)[REASON].decode()
    assert "listing.request.v1" in reason


async def test_an_outbox_row_that_breaks_its_contract_stays_unpublished_and_never_blocks_the_others(listing):
    await listing.given_region()
    await listing.fetch("INSERT INTO listing.outbox (event_type, data) VALUES ('listing.started.v1', '{\"bad\": 1}')")
    key = await listing.given_person()

    await listing.post("listing.request.v1", list_request(key))

    events = await listing.published("listing.started.v1", lambda es: any(e.data["patient_key"] == key for e in es))
    assert [e.data["patient_key"] for e in events] == [key]

    async def unpublished():
        rows = await listing.fetch("SELECT data FROM listing.outbox WHERE published_at IS NULL")
        return [r["data"] for r in rows] if len(rows) == 1 else None

    assert await listing.eventually(unpublished) == ['{"bad": 1}']


async def test_a_valid_fact_the_register_cannot_hold_is_dead_lettered_at_once_with_a_reason(listing):
    from listing_harness import UNIT_A_NAME, role_started, unit_register

    await listing.publish("practitioner_role.started.v1", role_started("role-tiny", DOCTOR_1, UNIT_A, fte=5e-324))
    await listing.publish("care_unit.contracted.v1", unit_register(
        UNIT_A, UNIT_A_NAME, contract_from=TODAY.isoformat(), contract_to=(TODAY.replace(day=1)).isoformat()
        if TODAY.day > 1 else "2000-01-01"))
    from aiokafka import AIOKafkaConsumer

    topics = [listing.prefix + registry().topic_for(t).dlq for t in ("practitioner_role.started.v1",
                                                                      "care_unit.contracted.v1")]
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=listing.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    found = []
    try:
        for _ in range(150):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += records
            if len(found) >= 2:
                break
    finally:
        await consumer.stop()
    reasons = sorted(dict(r.headers)[REASON].decode() for r in found)
    assert len(reasons) == 2
    assert all("register cannot hold" in r and "handler failed" not in r for r in reasons), reasons


async def test_F5_a_change_of_coordinating_flk_is_published_whether_named_or_moved_by_an_end(
        migrated_database, topic_prefix, kafka_bootstrap, producer):
    """Kronoberg: several FLKs, one coordinating. listing.events.v1 must say who coordinates, as the
    register does, when a command names a new one and when the coordinating one ends."""
    doctor_2 = "SE2321000016-L002"
    async with running_listing(migrated_database, topic_prefix, kafka_bootstrap, producer,
                               profile="kronoberg") as listing:
        await listing.given_region()
        await listing.fact("practitioner_role.started.v1", role_started("role-2", doctor_2, UNIT_A))
        key = await listing.given_person()
        await listing.post("listing.request.v1", list_request(key))
        first = await listing.post("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=DOCTOR_1))
        second = await listing.post("fast_lakarkontakt.assign.v1",
                                    assign_flk(key, practitioner_id=doctor_2, coordinating=True))
        assert (first.status_code, second.status_code) == (200, 200), second.text
        ended = await listing.post("fast_lakarkontakt.end.v1", assign_flk(
            key, practitioner_id=doctor_2, reason="ended_by_patient", on=START + timedelta(days=5)))
        assert ended.status_code == 200, ended.text

        events = await listing.published("fast_lakarkontakt.coordinating_changed.v1", lambda es: sum(
            e.event_type == "fast_lakarkontakt.coordinating_changed.v1" for e in es) >= 2)
        rows = await listing.fetch("SELECT list_id, practitioner_id FROM listing.flk_assignment "
                                   "WHERE patient_key = $1 AND end_on IS NULL AND coordinating", key)
    changes = [e.data for e in events if e.event_type == "fast_lakarkontakt.coordinating_changed.v1"]
    lists = {e.data["practitioner_id"]: e.data["list_id"] for e in events
             if e.event_type == "fast_lakarkontakt.assigned.v1"}
    assert [(c["practitioner_id"], c["previous_list_id"]) for c in changes] == [
        (doctor_2, lists[DOCTOR_1]), (DOCTOR_1, lists[doctor_2])]
    assert [r["practitioner_id"] for r in rows] == [DOCTOR_1]          # the register agrees with the stream


async def test_L5_the_same_switch_requested_through_two_channels_uses_up_one_switch(listing):
    """The patient asks 1177 and the vårdcentral's EHR for the same move (two command ids): the first
    moves them, the second is refused already_listed_at_unit (L1) and counts nothing."""
    from listing_harness import UNIT_B

    await listing.given_region()
    key = await listing.given_person()
    first_listing = await listing.post("listing.request.v1", list_request(key, unit=UNIT_A))
    assert first_listing.status_code == 200
    move = dict(unit=UNIT_B, on=START + timedelta(days=40))
    by_1177 = await listing.post("listing.request.v1", list_request(key, channel="1177", **move))
    assert by_1177.status_code == 200, by_1177.text
    await listing.publish("listing.request.v1", list_request(key, channel="ehr", **move))   # another command id

    events = await listing.published("listing.rejected.v1", lambda es: any(
        e.event_type == "listing.rejected.v1" and e.data["patient_key"] == key for e in es))
    [rejected] = [e for e in events if e.event_type == "listing.rejected.v1" and e.data["patient_key"] == key]
    assert (rejected.data["rule_id"], rejected.data["reason_code"]) == ("L1", "already_listed_at_unit")
    changes = await listing.fetch("SELECT to_care_unit_id, counts_toward_switch_limit FROM listing.listing_change "
                                  "WHERE patient_key = $1 ORDER BY changed_on", key)
    assert [(c["to_care_unit_id"], c["counts_toward_switch_limit"]) for c in changes] == [(UNIT_B, True)]
