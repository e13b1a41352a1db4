"""The listing service's real handlers (service_layer/handlers.py, through dispatch.handle_message) on
the in-memory fakes (tests/support/listing_fakes.py): what a message does to the register, the
outbox and the inbox — without PostgreSQL. The same paths against the real repository are the
integration tests in tests/integration/listing."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from listing_builders import (
    ADULT,
    DAY,
    LIST_SPEC,
    LIST_ST,
    REGION,
    ROLE_SPEC,
    ROLE_ST,
    UNIT_A,
    UNIT_B,
    person,
    role,
    world,
)

from services.listing.domain.model import (
    CareUnit,
    EmploymentType,
    ListingLimit,
    ListingState,
    Period,
    PopulationStatus,
)
from services.listing.service_layer.dispatch import handle_message
from services.listing.service_layer.handlers import (
    InvalidMessage,
    Message,
    Outcome,
    expire_consents,
)
from tests.support.listing_fakes import FakeListingService, fake_listing_service

NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
OTHER = "p-other"


def service(state: ListingState | None = None, now: datetime = NOW) -> FakeListingService:
    return fake_listing_service(state if state is not None else world(person(ADULT), person(OTHER)), now=now)


def at(on: date) -> str:
    return datetime(on.year, on.month, on.day, 9, 0, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def message(message_type: str, data: dict, message_id: str | None = None) -> Message:
    return Message(message_id or str(uuid.uuid4()), message_type, data, NOW)


def listing_request(key: str = ADULT, unit: str = UNIT_A, on: date = DAY, **extra: object) -> Message:
    data = {"command_id": str(uuid.uuid4()), "patient_key": key, "care_unit_id": unit, "requested_at": at(on),
            "channel": "1177", "origin": "active_choice", "initiated_by": "person", "effective_date": on.isoformat(),
            **extra}
    return message("listing.request.v1", data, data["command_id"])


def flk_assignment(list_id: str, key: str = ADULT, unit: str = UNIT_A, on: date = DAY, **extra: object) -> Message:
    data = {"command_id": str(uuid.uuid4()), "patient_key": key, "care_unit_id": unit, "requested_at": at(on),
            "channel": "ehr", "list_id": list_id, "effective_date": on.isoformat(), **extra}
    return message("fast_lakarkontakt.assign.v1", data, data["command_id"])


def published(svc: FakeListingService) -> list[str]:
    return [e.event_type for e in svc.repo.outbox]


async def handle(svc: FakeListingService, msg: Message) -> Outcome:
    return await handle_message(msg, svc.deps)


# --------------------------------------------------------------------------- commands


async def test_an_accepted_listing_request_lists_the_person_and_publishes_listing_started_once() -> None:
    svc = service()
    request = listing_request()

    first = await handle(svc, request)
    again = await handle(svc, request)

    assert first.status == "accepted" and not first.replayed
    assert svc.repo.state.patients[ADULT].open_listing.care_unit_id == UNIT_A
    assert published(svc) == ["listing.started.v1"]
    assert again.replayed and again.status == "accepted" and again.events == first.events
    assert list(svc.repo.inbox) == [request.message_id]
    assert len(svc.decided) == 1  # the replay decided nothing


async def test_a_third_own_switch_within_12_months_is_rejected_by_L5_and_changes_nothing() -> None:
    svc = service()
    for on, unit in [(date(2023, 1, 1), UNIT_A), (date(2023, 6, 1), UNIT_B), (date(2023, 9, 1), UNIT_A)]:
        assert (await handle(svc, listing_request(unit=unit, on=on))).status == "accepted"

    outcome = await handle(svc, listing_request(unit=UNIT_B, on=date(2024, 1, 15)))

    assert outcome.status == "rejected"
    assert (outcome.rejection["rule_id"], outcome.rejection["reason_code"]) == ("L5", "switch_limit")
    assert svc.repo.state.patients[ADULT].open_listing.care_unit_id == UNIT_A
    assert published(svc)[-1] == "listing.rejected.v1"


async def test_a_listing_request_to_a_unit_at_its_listing_limit_is_rejected_by_L7() -> None:
    limited = CareUnit(UNIT_B, "Vårdcentralen Arboga", REGION, contracts=(Period(date(2015, 1, 1)),),
                       listing_limits=(ListingLimit(1, Period(date(2020, 1, 1))),))
    svc = service(replace(world(person(ADULT), person(OTHER)), units={**world().units, UNIT_B: limited}))
    assert (await handle(svc, listing_request(key=OTHER, unit=UNIT_B))).status == "accepted"

    outcome = await handle(svc, listing_request(key=ADULT, unit=UNIT_B))

    assert outcome.rejection is not None and outcome.rejection["rule_id"] == "L7"
    assert svc.repo.state.patients[ADULT].open_listing is None


async def test_an_flk_assignment_to_a_full_list_is_made_with_a_capacity_warning() -> None:
    small = role(ROLE_ST, employment=EmploymentType.ST_ALLMANMEDICIN, individual_capacity=1)
    svc = service(replace(world(person(ADULT), person(OTHER)), roles={**world().roles, ROLE_ST: small}))
    for key in (OTHER, ADULT):
        await handle(svc, listing_request(key=key))
    assert (await handle(svc, flk_assignment(LIST_ST, key=OTHER))).status == "accepted"

    outcome = await handle(svc, flk_assignment(LIST_ST, key=ADULT))

    assert outcome.status == "accepted"
    assert [e["type"] for e in outcome.events] == ["fast_lakarkontakt.assigned.v1", "capacity.warning.v1"]
    assert outcome.events[1]["data"]["list_size"] == 2
    assert [a.list_id for a in svc.repo.state.patients[ADULT].open_assignments] == [LIST_ST]


async def test_an_flk_assignment_by_practitioner_resolves_the_doctors_list() -> None:
    svc = service()
    await handle(svc, listing_request())

    outcome = await handle(svc, flk_assignment("", practitioner_id=f"hsa-{ROLE_SPEC}"))

    assert outcome.status == "accepted"
    assert outcome.events[0]["data"]["list_id"] == LIST_SPEC


async def test_ending_a_listing_names_the_unit_and_another_units_end_is_rejected() -> None:
    svc = service()
    await handle(svc, listing_request())

    def end(unit: str) -> Message:
        data = {"command_id": str(uuid.uuid4()), "patient_key": ADULT, "care_unit_id": unit, "requested_at": at(DAY),
                "channel": "admin", "reason": "ended_by_patient", "effective_date": "2024-05-01"}
        return message("listing.end.v1", data, data["command_id"])

    elsewhere = await handle(svc, end(UNIT_B))
    here = await handle(svc, end(UNIT_A))

    assert elsewhere.rejection is not None and elsewhere.rejection["reason_code"] == "not_listed"
    assert here.status == "accepted" and [e["type"] for e in here.events] == ["listing.ended.v1"]
    assert here.events[0]["data"]["listing_id"] == svc.repo.outbox[0].data["listing_id"]
    assert svc.repo.state.patients[ADULT].open_listing is None


async def test_a_childs_listing_waits_for_the_second_guardian_and_expires_in_the_sweep() -> None:
    child = person("p-child", birth=date(2015, 4, 2), guardians=frozenset({"g-mother", "g-father"}))
    svc = service(world(child))

    waiting = await handle(svc, listing_request(key="p-child", consenting_guardian_keys=["g-mother"]))
    assert [e["type"] for e in waiting.events] == ["listing.awaiting_consent.v1"]
    expires_on = date.fromisoformat(waiting.events[0]["data"]["expires_on"])

    assert await expire_consents(svc.deps, today=expires_on - timedelta(days=1)) == 0
    assert await expire_consents(svc.deps, today=expires_on) == 1
    assert await expire_consents(svc.deps, today=expires_on) == 0  # closed: nothing twice

    assert svc.repo.state.patients["p-child"].open_pending_listing is None
    assert svc.repo.outbox[-1].event_type == "listing.rejected.v1"
    assert svc.repo.outbox[-1].data["reason_code"] == "guardian_consent_expired"


# --------------------------------------------------------------------------- facts


def person_updated(key: str, status: str, on: date, **extra: object) -> Message:
    return message("person.updated.v1", {"patient_key": key, "status": status, "status_date": on.isoformat(),
                                         "updated_at": at(on), "region_code": REGION, **extra})


async def test_a_death_in_the_population_register_ends_the_listing_and_the_flk() -> None:
    svc = service()
    await handle(svc, listing_request())
    await handle(svc, flk_assignment(LIST_SPEC))
    listing_id = svc.repo.outbox[0].data["listing_id"]

    fact = person_updated(ADULT, "deceased", date(2024, 4, 2))
    outcome = await handle(svc, fact)
    again = await handle(svc, fact)

    record = svc.repo.state.patients[ADULT]
    assert record.person.population_status is PopulationStatus.DECEASED
    assert record.open_listing is None and record.open_assignments == ()
    ended = {e.event_type: e.data for e in svc.repo.outbox[2:]}
    assert set(ended) == {"listing.ended.v1", "fast_lakarkontakt.ended.v1"}
    assert ended["listing.ended.v1"]["listing_id"] == listing_id  # the id the listing got when it started
    assert outcome.status == "accepted" and again.replayed
    assert len(svc.repo.outbox) == 4  # the repeated fact ended nothing twice


async def test_a_new_person_in_the_population_register_is_stored_without_a_decision() -> None:
    svc = service(world(person(ADULT)))

    outcome = await handle(svc, message("person.registered.v1", {
        "patient_key": "p-new", "status": "folkbokford", "updated_at": at(DAY), "region_code": REGION,
        "birth_date": "2001-02-03", "protected_identity": True}))

    stored = svc.repo.state.patients["p-new"].person
    assert outcome.status == "recorded"
    assert (stored.birth_date, stored.protected_identity, stored.home_region) == (date(2001, 2, 3), True, REGION)
    assert svc.repo.outbox == [] and svc.decided == []


def role_started(role_id: str, practitioner_id: str, unit: str = UNIT_A, **extra: object) -> Message:
    return message("practitioner_role.started.v1", {
        "role_id": role_id, "practitioner_id": practitioner_id, "practitioner_name": "Dr Ny", "care_unit_id": unit,
        "profession": "läkare", "legitimerad": True, "employment_type": "tillsvidare", "specialty": "allmanmedicin",
        "fte": 1.0, "valid_from": "2020-01-01", **extra})


async def test_a_doctors_role_from_the_roster_gets_a_list_that_takes_assignments() -> None:
    svc = service()
    await handle(svc, listing_request())

    assert (await handle(svc, role_started("role-new", "hsa-new"))).status == "recorded"
    outcome = await handle(svc, flk_assignment("", practitioner_id="hsa-new"))

    assert svc.repo.state.lists["L-role-new"].display_name == "Dr Ny"
    assert outcome.status == "accepted" and outcome.events[0]["data"]["list_id"] == "L-role-new"


async def test_a_nurses_role_from_the_roster_gets_no_list() -> None:
    svc = service()

    await handle(svc, role_started("role-ssk", "hsa-ssk", profession="sjuksköterska", specialty=None))

    assert "role-ssk" in svc.repo.state.roles and "L-role-ssk" not in svc.repo.state.lists


async def test_a_doctors_role_ending_ends_the_assignments_on_its_list() -> None:
    svc = service()
    await handle(svc, listing_request())
    await handle(svc, flk_assignment(LIST_SPEC))

    outcome = await handle(svc, message("practitioner_role.ended.v1", {
        "role_id": ROLE_SPEC, "practitioner_id": f"hsa-{ROLE_SPEC}", "care_unit_id": UNIT_A, "ended_on": "2024-06-30"}))

    assert outcome.status == "accepted"
    assert svc.repo.state.patients[ADULT].open_assignments == ()
    assert svc.repo.outbox[-1].event_type == "fast_lakarkontakt.ended.v1"
    assert svc.repo.outbox[-1].data["reason"] == "doctor_left"


def unit_register(**extra: object) -> Message:
    return message("care_unit.contracted.v1", {
        "care_unit_id": "SE-NEW", "name": "Vårdcentralen Ny", "region_code": REGION, "contract_from": "2024-01-01",
        "recorded_at": at(DAY), **extra})


async def test_a_unit_from_the_register_takes_listings() -> None:
    svc = service()

    await handle(svc, unit_register())
    outcome = await handle(svc, listing_request(unit="SE-NEW"))

    assert outcome.status == "accepted"


async def test_a_refused_unit_register_fact_is_invalid_and_leaves_the_register_as_it_was() -> None:
    svc = service()
    await handle(svc, unit_register(contract_to="2030-12-31"))
    before = (svc.repo.state, dict(svc.repo.inbox))

    with pytest.raises(InvalidMessage, match="can only be closed"):
        await handle(svc, unit_register(contract_to=None, name="Omdöpt"))  # reopening a recorded period

    assert (svc.repo.state, svc.repo.inbox) == before
    assert svc.uow.rollbacks == 1
