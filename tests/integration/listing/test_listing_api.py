"""The REST API on the real PostgreSQL: answers, access rules, the audit log, the 1177 view."""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from listing_harness import (
    DOCTOR_1,
    FICTIVE_A,
    START,
    TODAY,
    UNIT_A,
    UNIT_A_NAME,
    UNIT_B,
    assign_flk,
    list_request,
    role_started,
)

from flk.security.tokens import Role
from tests.support.builders import NURSE_1


async def test_an_accepted_command_answers_200_with_the_events_it_caused(listing):
    await listing.given_region()
    key = await listing.given_person()

    response = await listing.post("listing.request.v1", list_request(key), listing.token(units=(UNIT_A,)))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "accepted"
    assert [e["type"] for e in body["events"]] == ["listing.started.v1"]
    assert body["events"][0]["data"]["care_unit_id"] == UNIT_A


async def test_L3_a_rejected_command_answers_409_with_rule_id_and_swedish_and_english_message(listing):
    await listing.given_region()
    key = await listing.given_person()
    before_contract = START - timedelta(days=30)

    response = await listing.post("listing.request.v1", list_request(key, on=before_contract))

    assert response.status_code == 409
    rejection = response.json()["rejection"]
    assert rejection["rule_id"] == "L3"
    assert rejection["reason_code"] == "no_contract_on_date"
    assert rejection["message_sv"] and rejection["message_en"] and rejection["message_sv"] != rejection["message_en"]
    assert rejection["decided_under"].startswith("national@")


async def test_F1_nurse_as_flk_is_refused_as_not_a_doctor_on_the_rest_path(listing):
    await listing.given_region()
    await listing.fact("practitioner_role.started.v1", role_started(
        "role-nurse-1", NURSE_1, UNIT_A, profession="sjuksköterska", specialty=None))
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key))

    response = await listing.post("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=NURSE_1))

    assert response.status_code == 409
    rejection = response.json()["rejection"]
    assert (rejection["rule_id"], rejection["reason_code"]) == ("F1", "not_legitimerad_lakare")


async def test_an_invalid_command_body_answers_422_saying_what_was_wrong(listing):
    body = list_request(listing.new_patient_key())
    del body["care_unit_id"]

    response = await listing.post("listing.request.v1", body)

    assert response.status_code == 422
    assert "care_unit_id" in response.json()["detail"]
    not_json = await listing.client.post("/commands/listing.request.v1", content=b"{nope",
                                         headers=listing.token(Role.LISTING_ADMIN, ()))
    assert not_json.status_code == 422


async def test_staff_may_not_send_commands_for_another_unit(listing):
    await listing.given_region()
    key = await listing.given_person()

    response = await listing.post("listing.request.v1", list_request(key, unit=UNIT_B), listing.token(units=(UNIT_A,)))

    assert response.status_code == 403


async def test_unit_staff_read_their_patient_and_the_read_is_audit_logged(listing):
    await listing.given_region()
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key))
    await listing.post("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=DOCTOR_1))

    response = await listing.client.get(f"/patients/{key}", headers=listing.token(units=(UNIT_A,)))

    assert response.status_code == 200
    body = response.json()
    assert body["listing"]["care_unit_id"] == UNIT_A
    assert [f["practitioner_id"] for f in body["fast_lakarkontakter"]] == [DOCTOR_1]
    audit = await listing.fetch("SELECT action, outcome, unit_id FROM platform.audit_log WHERE patient_key = $1 "
                                "AND action = 'listing.patient.read'", key)
    assert [(a["outcome"], a["unit_id"]) for a in audit] == [("allowed", UNIT_A)]


async def test_a_patient_read_names_each_fast_lakarkontakts_list_as_the_units_lists_do(listing):
    await listing.given_region()
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key))
    await listing.post("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=DOCTOR_1))
    staff = listing.token(units=(UNIT_A,))

    body = (await listing.client.get(f"/patients/{key}", headers=staff)).json()
    lists = (await listing.client.get(f"/units/{UNIT_A}/lists", headers=staff)).json()["lists"]

    doctor_list = next(lst for lst in lists if lst["practitioner_id"] == DOCTOR_1)
    assert [(f["list_id"], f["display_name"], f["kind"]) for f in body["fast_lakarkontakter"]] == \
        [(doctor_list["list_id"], doctor_list["display_name"], "doctor")]
    assert doctor_list["display_name"]


async def test_another_units_patient_answers_404_and_the_attempt_is_audit_logged(listing):
    await listing.given_region()
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key, unit=UNIT_A))

    response = await listing.client.get(f"/patients/{key}", headers=listing.token(units=(UNIT_B,)))
    history = await listing.client.get(f"/patients/{key}/history", headers=listing.token(units=(UNIT_B,)))

    assert response.status_code == 404 and history.status_code == 404
    audit = await listing.fetch("SELECT outcome FROM platform.audit_log WHERE patient_key = $1 "
                                "AND action LIKE 'listing.patient.%'", key)
    assert [a["outcome"] for a in audit] == ["denied", "denied"]


async def test_history_shows_every_listing_with_its_end_reason(listing):
    await listing.given_region()
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key, unit=UNIT_B))
    await listing.post("listing.request.v1", list_request(key, unit=UNIT_A, on=TODAY))

    response = await listing.client.get(f"/patients/{key}/history", headers=listing.token(units=(UNIT_A,)))

    assert response.status_code == 200
    listings = response.json()["listings"]
    assert [(x["care_unit_id"], x["end_reason"]) for x in listings] == [(UNIT_B, "relisted"), (UNIT_A, None)]
    assert len(response.json()["changes"]) == 1


async def test_F3_the_1177_view_never_shows_a_fictive_list(listing):
    await listing.given_region()
    key = await listing.given_person()
    await listing.post("listing.request.v1", list_request(key))
    placed = await listing.post("fast_lakarkontakt.assign.v1", assign_flk(key, list_id=FICTIVE_A))
    assert placed.status_code == 200

    staff = (await listing.client.get(f"/patients/{key}", headers=listing.token(units=(UNIT_A,)))).json()
    mine = await listing.client.get("/me/fast-lakarkontakt", headers=listing.token(Role.PATIENT, (), key))

    assert [(f["list_id"], f["kind"], f["named"]) for f in staff["fast_lakarkontakter"]] == \
        [(FICTIVE_A, "fictive", False)]  # internally the placement is visible, marked as not an FLK
    assert mine.status_code == 200
    view = mine.json()
    assert view["care_unit_id"] == UNIT_A and view["care_unit_name"] == UNIT_A_NAME
    assert view["fast_lakarkontakter"] == []
    assert "Dr X" not in json.dumps(view, ensure_ascii=False) and FICTIVE_A not in json.dumps(view)


async def test_P2_the_1177_view_of_a_protected_person_holds_ids_and_the_units_name_only(listing):
    await listing.given_region()
    key = await listing.given_person(protected_identity=True, birth_date="1961-07-14")
    await listing.post("listing.request.v1", list_request(key))
    await listing.post("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=DOCTOR_1))

    view = (await listing.client.get("/me/fast-lakarkontakt", headers=listing.token(Role.PATIENT, (), key))).json()

    assert set(view) == {"care_unit_id", "care_unit_name", "fast_lakarkontakter", "fast_vardkontakter",
                         "declined_fast_lakarkontakt", "pending_listing", "awaiting_my_consent"}  # P3: ids and dates
    assert view["pending_listing"] is None and view["awaiting_my_consent"] == []
    assert [f["practitioner_id"] for f in view["fast_lakarkontakter"]] == [DOCTOR_1]
    text = json.dumps(view, ensure_ascii=False)
    assert key not in text and "1961" not in text
    audit = await listing.fetch("SELECT outcome FROM platform.audit_log WHERE patient_key = $1 "
                                "AND action = 'listing.patient_view.read'", key)
    assert [a["outcome"] for a in audit] == ["allowed"]


async def test_the_1177_view_is_for_patient_tokens_only(listing):
    response = await listing.client.get("/me/fast-lakarkontakt", headers=listing.token(units=(UNIT_A,)))
    assert response.status_code == 403


async def test_F6_unit_lists_show_size_capacity_free_capacity_and_rub_weighted_load(listing):
    await listing.given_region()
    keys = [await listing.given_person() for _ in range(3)]
    for i, key in enumerate(keys):
        await listing.post("listing.request.v1", list_request(key))
        await listing.post("fast_lakarkontakt.assign.v1", assign_flk(key, practitioner_id=DOCTOR_1))
        await listing.fact("risk.assessed.v1", {"assessment_id": f"a-{key}", "patient_key": key, "rub": 5 if i == 0 else 1,
                                                "acg_version": "12.0", "lookback_months": 24,
                                                "computed_at": "2026-01-01T00:00:00Z"})
    await listing.fact("practitioner_role.started.v1", {
        "role_id": "role-st", "practitioner_id": "SE2321000016-L003", "care_unit_id": UNIT_A, "profession": "läkare",
        "legitimerad": True, "employment_type": "st_allmanmedicin", "specialty": "allmanmedicin", "fte": 0.5,
        "valid_from": START.isoformat()})

    response = await listing.client.get(f"/units/{UNIT_A}/lists", headers=listing.token(Role.VERKSAMHETSCHEF, (UNIT_A,)))

    assert response.status_code == 200
    lists = {x["list_id"]: x for x in response.json()["lists"]}
    doctor = next(x for x in lists.values() if x["practitioner_id"] == DOCTOR_1)
    assert (doctor["kind"], doctor["size"], doctor["capacity"], doctor["free_capacity"]) == ("doctor", 3, 1100, 1097)
    weights = response.json()["rub_weights"]
    assert doctor["rub_weighted_size"] == round(weights["5"] + 2 * weights["1"], 2)
    st = next(x for x in lists.values() if x["practitioner_id"] == "SE2321000016-L003")
    assert (st["size"], st["capacity"]) == (0, 275)  # ST: 550 × 0.5 FTE
    fictive = lists[FICTIVE_A]
    assert (fictive["kind"], fictive["practitioner_id"], fictive["capacity"]) == ("fictive", None, None)
    other = await listing.client.get(f"/units/{UNIT_A}/lists", headers=listing.token(units=(UNIT_B,)))
    assert other.status_code == 403


async def test_a_doctors_list_is_named_by_the_rosters_practitioner_name_and_follows_a_change(listing):
    await listing.given_region()
    named = "SE2321000016-L004"
    await listing.fact("practitioner_role.started.v1", role_started("role-named", named, UNIT_A,
                                                                     practitioner_name="Karin Lind"))

    async def names() -> dict[str, str]:
        response = await listing.client.get(f"/units/{UNIT_A}/lists",
                                            headers=listing.token(Role.VERKSAMHETSCHEF, (UNIT_A,)))
        return {x["practitioner_id"]: x["display_name"] for x in response.json()["lists"] if x["practitioner_id"]}

    before = await names()
    assert before[named] == "Karin Lind"
    assert DOCTOR_1 in before[DOCTOR_1], "a role without a name: the unit's name and the HSA-id, as before"
    await listing.fact("practitioner_role.changed.v1", role_started("role-named", named, UNIT_A, fte=0.8,
                                                                     practitioner_name="Karin Lind Ek"))
    assert (await names())[named] == "Karin Lind Ek"


async def test_L1_two_concurrent_listings_of_the_same_person_exactly_one_wins(listing):
    await listing.given_region()
    key = await listing.given_person()
    first, second = list_request(key), list_request(key)  # two EHRs, two command ids, the same unit

    answers = await asyncio.gather(listing.post("listing.request.v1", first),
                                   listing.post("listing.request.v1", second))

    assert sorted(a.status_code for a in answers) == [200, 409]
    loser = next(a for a in answers if a.status_code == 409).json()
    assert loser["rejection"]["rule_id"] == "L1"
    rows = await listing.fetch("SELECT count(*) AS n FROM listing.listing WHERE patient_key = $1", key)
    assert rows[0]["n"] == 1


async def test_L1_the_database_refuses_a_second_open_listing_whatever_the_application_does(listing):
    """Two transactions insert an open listing for the same person at once, without the person lock
    the handlers take: the constraint (not luck, not the lock) lets exactly one commit."""
    import asyncpg

    await listing.given_region()
    key = await listing.given_person()
    insert = ("INSERT INTO listing.listing (listing_id, patient_key, care_unit_id, registered_on, start_on, origin,"
              " channel, initiated_by) VALUES (gen_random_uuid(), $1, $2, current_date, current_date, 'active_choice',"
              " 'ehr', 'person')")
    a, b = await asyncpg.connect(listing.dsn), await asyncpg.connect(listing.dsn)
    try:
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        await a.execute(insert, key, UNIT_A)
        blocked = asyncio.create_task(b.execute(insert, key, UNIT_B))  # waits for a's uncommitted row
        await asyncio.sleep(0.3)
        assert not blocked.done()
        await ta.commit()
        outcome = await asyncio.gather(blocked, return_exceptions=True)
        await tb.rollback()
    finally:
        await a.close()
        await b.close()
    assert isinstance(outcome[0], (asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError))
    rows = await listing.fetch("SELECT care_unit_id FROM listing.listing WHERE patient_key = $1", key)
    assert [r["care_unit_id"] for r in rows] == [UNIT_A]


async def test_a_repeated_command_answers_what_the_first_one_did(listing):
    await listing.given_region()
    key = await listing.given_person()
    request = list_request(key)

    first = await listing.post("listing.request.v1", request)
    again = await listing.post("listing.request.v1", request)

    assert first.status_code == again.status_code == 200
    assert again.json()["replayed"] is True and again.json()["events"] == first.json()["events"]


async def test_a_date_the_rules_cannot_compute_with_answers_422(listing):
    response = await listing.post("listing.request.v1", list_request(listing.new_patient_key(),
                                                                     effective_date="9999-12-31"))
    assert response.status_code == 422
    assert "effective_date" in response.json()["detail"]


async def test_probes_and_metrics_answer_without_a_token(listing):
    assert (await listing.client.get("/healthz")).status_code == 200
    ready = await listing.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "backlog": {"outbox": 0, "parked_commands": 0}}
    metrics = await listing.client.get("/metrics")
    assert metrics.status_code == 200 and "flk_listing_messages_total" in metrics.text
