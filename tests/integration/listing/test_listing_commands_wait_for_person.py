"""L4 over Kafka: a command that overtakes the registration of its person waits for it (parked),
keeps the person's order, and is rejected `person_unknown` only when the person never comes."""
from __future__ import annotations

import json
from datetime import timedelta

from listing_harness import DOCTOR_1, START, UNIT_A, assign_flk, list_request, person, running_listing


async def parked(listing, key: str) -> list[str]:
    rows = await listing.fetch(
        "SELECT message_type FROM listing.parked_command WHERE patient_key = $1 ORDER BY seq", key)
    return [r["message_type"] for r in rows]


async def parked_gauges(listing) -> dict[str, float]:
    """The parked-command gauges of /metrics (the ParkedCommandsWaitingTooLong alert's input)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (await listing.client.get("/metrics")).text
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("flk_listing_parked_")}


async def test_L4_a_kafka_command_for_a_person_not_yet_registered_waits_and_is_decided_when_the_person_arrives(
        listing):
    await listing.given_region()
    key = listing.new_patient_key()
    request = list_request(key)

    await listing.publish("listing.request.v1", request)

    assert await listing.eventually(lambda: parked(listing, key)) == ["listing.request.v1"]
    assert await listing.fetch("SELECT 1 FROM listing.inbox WHERE message_id = $1", request["command_id"]) == []

    async def waiting_gauges():
        gauges = await parked_gauges(listing)
        return gauges if gauges.get("flk_listing_parked_oldest_age_seconds", 0) > 0 else None

    gauges = await listing.eventually(waiting_gauges)
    assert gauges["flk_listing_parked_commands_waiting"] == 1
    assert gauges["flk_listing_parked_wait_limit_seconds"] == listing.settings.person_wait_s

    async def group_lag_exported() -> bool:  # the ConsumerLagGrowing alert's input, from the broker
        text = (await listing.client.get("/metrics")).text
        return all(f'flk_consumer_group_lag_records{{group="listing-{c}"}}' in text for c in ("commands", "facts"))
    assert await listing.eventually(group_lag_exported)

    await listing.publish("person.registered.v1", person(key))

    events = await listing.published("listing.started.v1", lambda es: any(
        e.data.get("patient_key") == key for e in es))
    assert [e.event_type for e in events if e.data.get("patient_key") == key] == ["listing.started.v1"]
    assert await listing.eventually(lambda: _no(parked(listing, key)))
    rows = await listing.fetch("SELECT care_unit_id FROM listing.listing WHERE patient_key = $1", key)
    assert [r["care_unit_id"] for r in rows] == [UNIT_A]

    async def nothing_waits():
        gauges = await parked_gauges(listing)
        return gauges.get("flk_listing_parked_oldest_age_seconds") == 0 and \
            gauges.get("flk_listing_parked_commands_waiting") == 0
    assert await listing.eventually(nothing_waits)


async def test_L4_a_persons_later_commands_wait_behind_the_parked_one_and_keep_their_order(listing):
    await listing.given_region()
    key = listing.new_patient_key()
    await listing.publish("listing.request.v1", list_request(key))
    await listing.publish("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=DOCTOR_1))
    assert await listing.eventually(lambda: _equal(parked(listing, key), 2))

    await listing.fact("person.registered.v1", person(key))

    async def assigned() -> list:
        return await listing.fetch(
            "SELECT a.patient_key FROM listing.flk_assignment a WHERE a.patient_key = $1 AND a.end_on IS NULL", key)

    assert await listing.eventually(assigned), "the FLK was assigned after the listing it needs"
    assert await parked(listing, key) == []
    rejected = await listing.fetch("SELECT count(*) AS n FROM listing.outbox WHERE event_type = 'listing.rejected.v1'")
    assert rejected[0]["n"] == 0


async def test_L4_a_command_whose_person_never_comes_is_rejected_person_unknown_after_the_wait(
        migrated_database, topic_prefix, kafka_bootstrap, producer):
    async with running_listing(migrated_database, topic_prefix, kafka_bootstrap, producer,
                               person_wait_s=1.0, parked_release_interval_s=0.2) as listing:
        await listing.given_region()
        key = listing.new_patient_key()
        request = list_request(key)

        await listing.publish("listing.request.v1", request)

        events = await listing.published("listing.rejected.v1", lambda es: any(
            e.data.get("command_id") == request["command_id"] for e in es))
        rejection = [e for e in events if e.data.get("command_id") == request["command_id"]]
        assert len(rejection) == 1 and rejection[0].data["reason_code"] == "person_unknown"
        assert rejection[0].data["rule_id"] == "L4"
        assert await parked(listing, key) == []


async def test_a_parked_command_delivered_again_is_parked_once_and_decided_once(listing):
    await listing.given_region()
    key = listing.new_patient_key()
    request = list_request(key)
    await listing.publish("listing.request.v1", request)
    await listing.publish("listing.request.v1", request)  # the EHR retries; a new CloudEvents id
    assert await listing.eventually(lambda: parked(listing, key)) == ["listing.request.v1"]

    await listing.fact("person.registered.v1", person(key))

    async def started() -> list:
        return await listing.fetch("SELECT 1 FROM listing.outbox WHERE event_type = 'listing.started.v1'")

    assert await listing.eventually(started)
    assert await listing.eventually(lambda: _no(parked(listing, key)))
    assert len(await started()) == 1
    assert len(await listing.fetch("SELECT 1 FROM listing.listing WHERE patient_key = $1", key)) == 1


async def test_a_command_for_a_known_person_is_not_parked(listing):
    await listing.given_region()
    key = await listing.given_person()
    await listing.publish("listing.request.v1", list_request(key, on=START + timedelta(days=2)))

    async def listed() -> list:
        return await listing.fetch("SELECT 1 FROM listing.listing WHERE patient_key = $1", key)

    assert await listing.eventually(listed)
    parked_total = await listing.fetch("SELECT count(*) AS n FROM listing.parked_command")
    assert parked_total[0]["n"] == 0


async def _no(rows) -> bool:
    return not await rows


async def _equal(rows, n: int) -> bool:
    return len(await rows) == n


async def test_a_released_command_handled_before_a_crash_is_answered_from_the_inbox_not_applied_twice(listing):
    """The release deletes a parked row after its handler committed; a crash in between leaves the
    row, and the next release must not apply the command a second time."""
    await listing.given_region()
    key = await listing.given_person()
    request = list_request(key)
    assert (await listing.post("listing.request.v1", request)).status_code == 200
    await listing.fetch(  # as if the release had committed the handler and crashed before the delete
        "INSERT INTO listing.parked_command (command_id, patient_key, message_type, data, event_id, event_source) "
        "VALUES ($1, $2, 'listing.request.v1', $3::jsonb, 'ce-1', 'urn:test')",
        request["command_id"], key, json.dumps(request))

    await listing.app.state.runtime.release_parked()  # (or the service's own release loop, whichever is first)

    assert await listing.eventually(lambda: _no(parked(listing, key)))
    started = await listing.fetch("SELECT 1 FROM listing.outbox WHERE event_type = 'listing.started.v1'")
    assert len(started) == 1
    assert len(await listing.fetch("SELECT 1 FROM listing.listing WHERE patient_key = $1", key)) == 1


async def test_L4_commands_handled_one_at_a_time_wait_for_their_person_too(
        migrated_database, topic_prefix, kafka_bootstrap, producer):
    async with running_listing(migrated_database, topic_prefix, kafka_bootstrap, producer,
                               command_chunk_size=1, parked_release_interval_s=0.2) as listing:
        await listing.given_region()
        key = listing.new_patient_key()
        await listing.publish("listing.request.v1", list_request(key))
        assert await listing.eventually(lambda: parked(listing, key)) == ["listing.request.v1"]

        await listing.fact("person.registered.v1", person(key))

        async def listed() -> list:
            return await listing.fetch("SELECT 1 FROM listing.listing WHERE patient_key = $1", key)

        assert await listing.eventually(listed)
        assert await parked(listing, key) == []
