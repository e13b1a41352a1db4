"""P3 end to end: a minor's listing by one of two guardians waits for the other guardian's consent.

The guardians come from the population register (``person.registered.v1`` ``guardian_keys``); the
request is pending in the register and published (``listing.awaiting_consent.v1``), shown on the 1177
view to the child and to the guardian it waits for, completed by ``listing.consent.v1`` sent with the
second guardian's own token, and otherwise expired by the sweep with its own reason.
"""
from __future__ import annotations

from datetime import date, timedelta

from listing_harness import TODAY, UNIT_A, UNIT_A_NAME, command, list_request

from flk.security.tokens import Role
from services.listing.domain.policy import profile_for
from services.listing.service_layer.handlers import expire_consents

WAIT = profile_for("national", TODAY).p3_consent_wait_days
CHILD_BIRTH = (TODAY - timedelta(days=365 * 8)).isoformat()


async def given_child(listing, **overrides):
    mother, father = listing.new_patient_key(), listing.new_patient_key()
    child = await listing.given_person(birth_date=CHILD_BIRTH, guardian_keys=[mother, father], **overrides)
    return child, mother, father


def consent(child: str, guardian: str, decision: str = "consent", on: date | None = None) -> dict:
    data = command(patient_key=child, care_unit_id=UNIT_A, guardian_key=guardian, decision=decision, channel="1177")
    if on is not None:
        data["effective_date"] = on.isoformat()
    return data


async def test_P3_listing_waits_for_the_second_guardian(listing):
    await listing.given_region()
    child, mother, father = await given_child(listing)

    asked = await listing.post("listing.request.v1", list_request(
        child, on=TODAY, consenting_guardian_keys=[mother], guardian_count=1))  # the caller's count is not believed
    assert asked.status_code == 200, asked.text
    [waiting] = asked.json()["events"]
    assert waiting["type"] == "listing.awaiting_consent.v1"
    assert waiting["data"]["awaiting_guardian_keys"] == [father]
    assert waiting["data"]["expires_on"] == (TODAY + timedelta(days=WAIT)).isoformat()
    assert not await listing.fetch("SELECT 1 FROM listing.listing WHERE patient_key = $1", child)

    # the 1177 view: the child sees the pending listing, the father sees it waits for him, the mother does not
    seen = (await listing.client.get("/me/fast-lakarkontakt", headers=listing.token(Role.PATIENT, (), child))).json()
    assert seen["pending_listing"] == {"care_unit_id": UNIT_A, "care_unit_name": UNIT_A_NAME,
                                       "requested_on": TODAY.isoformat(),
                                       "expires_on": (TODAY + timedelta(days=WAIT)).isoformat(),
                                       "status": "awaiting_guardian_consent", "awaiting_guardians": 1}
    as_father = (await listing.client.get("/me/fast-lakarkontakt",
                                          headers=listing.token(Role.PATIENT, (), father))).json()
    assert [(c["patient_key"], c["care_unit_id"], c["status"]) for c in as_father["awaiting_my_consent"]] == [
        (child, UNIT_A, "awaiting_your_consent")]
    as_mother = (await listing.client.get("/me/fast-lakarkontakt",
                                          headers=listing.token(Role.PATIENT, (), mother))).json()
    assert as_mother["awaiting_my_consent"] == []
    audited = await listing.fetch("SELECT action FROM platform.audit_log WHERE patient_key = $1 "
                                  "AND action = 'listing.guardian_view.read'", child)
    assert len(audited) == 1

    # the mother cannot consent in the father's name; the father can
    assert (await listing.post("listing.consent.v1", consent(child, father),
                               listing.token(Role.PATIENT, (), mother))).status_code == 403
    given = await listing.post("listing.consent.v1", consent(child, father), listing.token(Role.PATIENT, (), father))
    assert given.status_code == 200, given.text
    types = [e["type"] for e in given.json()["events"]]
    assert types == ["listing.consent_closed.v1", "listing.started.v1"]
    assert given.json()["events"][0]["data"]["outcome"] == "consented"
    rows = await listing.fetch("SELECT care_unit_id, end_on FROM listing.listing WHERE patient_key = $1", child)
    assert [(r["care_unit_id"], r["end_on"]) for r in rows] == [(UNIT_A, None)]

    # the consent arriving again (another command id) lists nobody twice
    again = await listing.post("listing.consent.v1", consent(child, father), listing.token(Role.PATIENT, (), father))
    assert again.status_code == 409 and again.json()["rejection"]["reason_code"] == "no_pending_listing_request"

    published = await listing.published("listing.awaiting_consent.v1", lambda found: sum(
        e.event_type in ("listing.awaiting_consent.v1", "listing.consent_closed.v1") and e.data["patient_key"] == child
        for e in found) >= 2)
    assert {e.event_type for e in published if e.data.get("patient_key") == child} >= {
        "listing.awaiting_consent.v1", "listing.consent_closed.v1", "listing.started.v1"}


async def test_P3_a_consent_by_someone_who_is_not_a_guardian_is_rejected(listing):
    await listing.given_region()
    child, mother, _ = await given_child(listing)
    stranger = listing.new_patient_key()
    await listing.post("listing.request.v1", list_request(child, on=TODAY, consenting_guardian_keys=[mother]))

    response = await listing.post("listing.consent.v1", consent(child, stranger),
                                  listing.token(Role.PATIENT, (), stranger))
    assert response.status_code == 409
    assert response.json()["rejection"]["reason_code"] == "consent_by_non_guardian"
    assert (await listing.fetch("SELECT closed_on FROM listing.pending_listing WHERE patient_key = $1", child))[0][
        "closed_on"] is None


async def test_P3_the_second_guardian_refusing_rejects_the_listing(listing):
    await listing.given_region()
    child, mother, father = await given_child(listing)
    await listing.post("listing.request.v1", list_request(child, on=TODAY, consenting_guardian_keys=[mother]))

    response = await listing.post("listing.consent.v1", consent(child, father, "refuse"),
                                  listing.token(Role.PATIENT, (), father))
    assert response.status_code == 409
    assert response.json()["rejection"]["reason_code"] == "guardian_refused"
    [row] = await listing.fetch("SELECT closed_on, outcome FROM listing.pending_listing WHERE patient_key = $1", child)
    assert (row["closed_on"], row["outcome"]) == (TODAY, "refused")


async def test_P3_the_sweep_expires_a_request_nobody_consented_to(listing):
    await listing.given_region()
    child, mother, _ = await given_child(listing)
    asked_on = TODAY - timedelta(days=WAIT + 1)
    await listing.post("listing.request.v1", list_request(child, on=asked_on, consenting_guardian_keys=[mother]))
    deps = listing.app.state.runtime.deps

    assert await expire_consents(deps, today=asked_on + timedelta(days=WAIT - 1)) == 0
    assert await expire_consents(deps) == 1
    assert await expire_consents(deps) == 0  # idempotent
    [row] = await listing.fetch("SELECT closed_on, outcome FROM listing.pending_listing WHERE patient_key = $1", child)
    assert (row["closed_on"], row["outcome"]) == (asked_on + timedelta(days=WAIT), "expired")
    rejected = await listing.published("listing.rejected.v1", lambda found: any(
        e.event_type == "listing.rejected.v1" and e.data["patient_key"] == child for e in found))
    [rejection] = [e.data for e in rejected if e.event_type == "listing.rejected.v1" and e.data["patient_key"] == child]
    assert (rejection["reason_code"], rejection["rule_id"]) == ("guardian_consent_expired", "P3")
    seen = (await listing.client.get("/me/fast-lakarkontakt", headers=listing.token(Role.PATIENT, (), child))).json()
    assert seen["pending_listing"] is None


async def test_P3_the_childs_death_while_pending_cancels_the_request(listing):
    await listing.given_region()
    child, mother, _ = await given_child(listing)
    await listing.post("listing.request.v1", list_request(child, on=TODAY - timedelta(days=2),
                                                          consenting_guardian_keys=[mother]))
    await listing.fact("person.updated.v1", {"patient_key": child, "status": "deceased",
                                             "status_date": TODAY.isoformat(), "updated_at": "2030-01-01T00:00:00Z"})
    [row] = await listing.fetch("SELECT outcome FROM listing.pending_listing WHERE patient_key = $1", child)
    assert row["outcome"] == "cancelled"


async def test_P3_the_register_states_guardianship_later_and_the_last_statement_stays(listing):
    await listing.given_region()
    child = await listing.given_person(birth_date=CHILD_BIRTH)  # no guardianship fact: v1, the caller's count
    [row] = await listing.fetch("SELECT guardian_keys FROM listing.person WHERE patient_key = $1", child)
    assert row["guardian_keys"] is None
    mother, father = listing.new_patient_key(), listing.new_patient_key()
    await listing.fact("person.updated.v1", {"patient_key": child, "status": "folkbokford",
                                             "guardian_keys": [father, mother], "updated_at": "2030-01-01T00:00:00Z"})
    await listing.fact("person.updated.v1", {"patient_key": child, "status": "folkbokford",
                                             "updated_at": "2030-01-02T00:00:00Z"})
    [row] = await listing.fetch("SELECT guardian_keys FROM listing.person WHERE patient_key = $1", child)
    assert sorted(row["guardian_keys"]) == sorted([mother, father])


async def test_P3_metrics_show_the_open_requests_and_the_closed_ones_by_outcome_without_keys(listing):
    import asyncio

    from services.listing.adapters.repository import open_pending_listings

    await listing.given_region()
    child, mother, father = await given_child(listing)
    other, other_mother, _ = await given_child(listing)
    await listing.post("listing.request.v1", list_request(child, on=TODAY, consenting_guardian_keys=[mother]))
    await listing.post("listing.request.v1", list_request(
        other, on=TODAY - timedelta(days=WAIT + 1), consenting_guardian_keys=[other_mother]))
    runtime = listing.app.state.runtime
    assert await open_pending_listings(runtime.pool) == 2

    async def metrics_once(line: str) -> str:
        text = ""
        for _ in range(50):  # the gauge is refreshed by the relay loop, at most once a second
            text = (await listing.client.get("/metrics")).text
            if line in text:
                break
            await asyncio.sleep(0.1)
        return text

    assert "flk_listing_guardian_consent_pending 2.0" in await metrics_once("flk_listing_guardian_consent_pending 2.0")
    await listing.post("listing.consent.v1", consent(child, father, "refuse"), listing.token(Role.PATIENT, (), father))
    assert await expire_consents(runtime.deps) == 1
    assert await open_pending_listings(runtime.pool) == 0

    text = await metrics_once("flk_listing_guardian_consent_pending 0.0")
    assert "flk_listing_guardian_consent_pending 0.0" in text
    assert 'flk_listing_guardian_consent_closed_total{outcome="refused"} 1.0' in text
    assert 'flk_listing_guardian_consent_closed_total{outcome="expired"} 1.0' in text
    for key in (child, mother, father, other, other_mother):
        assert key not in text


async def test_P3_the_main_job_expires_what_waited_too_long_and_counts_the_requests_by_outcome(listing, tmp_path):
    import asyncpg

    from tools.mainjob.goals import read_guardian_consent
    from tools.mainjob.job import JobConfig, MainJob

    await listing.given_region()
    waiting, w_mother, _ = await given_child(listing)
    forgotten, f_mother, _ = await given_child(listing)
    refused, r_mother, r_father = await given_child(listing)
    await listing.post("listing.request.v1", list_request(waiting, on=TODAY, consenting_guardian_keys=[w_mother]))
    await listing.post("listing.request.v1", list_request(
        forgotten, on=TODAY - timedelta(days=WAIT + 1), consenting_guardian_keys=[f_mother]))
    await listing.post("listing.request.v1", list_request(refused, on=TODAY, consenting_guardian_keys=[r_mother]))
    await listing.post("listing.consent.v1", consent(refused, r_father, "refuse"),
                       listing.token(Role.PATIENT, (), r_father))
    since = TODAY - timedelta(days=365)

    conn = await asyncpg.connect(listing.dsn)
    try:
        before = await read_guardian_consent(conn, since, TODAY)
        assert (before.pending, before.past_expiry, before.refused, before.expired) == (2, 1, 1, 0)
        job = MainJob(JobConfig(bootstrap=listing.bootstrap, database_url=listing.dsn, state_dir=tmp_path,
                                limit_people=50, demo_sinks=False), echo=lambda _: None)
        assert await job._expire_consents() == 1
        after = await read_guardian_consent(conn, since, TODAY)
        assert (after.pending, after.past_expiry, after.refused, after.expired, after.total) == (1, 0, 1, 1, 3)
        assert (await read_guardian_consent(conn, TODAY + timedelta(days=1), TODAY)).total == 0
    finally:
        await conn.close()
