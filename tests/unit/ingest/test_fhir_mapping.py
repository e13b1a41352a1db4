"""FHIR R4 Encounter -> visit facts: the mapping table, Swedish identifiers, and every problem at its
FHIRPath (pure, no I/O)."""
from __future__ import annotations

import copy
from datetime import date, datetime, timezone

from flk.security.pseudonym import PersonId, patient_key
from services.ingest.domain.request import read_bundle, read_encounter
from services.ingest.domain.versions import decide
from tests.support import fhir_examples as fx

KEY = b"unit-test-pseudonym-key"
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)


def version_of(resource):
    read = read_encounter(resource, KEY)
    [entry] = read.entries
    assert entry.issues == [], entry.issues
    return entry.version


def issues_of(resource):
    [entry] = read_encounter(resource, KEY).entries
    assert entry.version is None
    return {i.expression: i for i in entry.issues}


def test_a_doctors_visit_maps_to_the_visit_facts_with_the_pseudonymous_patient_key():
    v = version_of(fx.encounter())
    assert v.kind == "contact"
    assert v.visit.as_dict() == {
        "patient_key": patient_key(PersonId("personnummer", fx.TOLVAN), KEY), "practitioner_id": fx.DOCTOR,
        "profession": "läkare", "care_unit_id": fx.UNIT, "contact_type": "besok",
        "occurred_at": "2026-11-03T09:30:00+01:00"}


def test_the_contact_type_table_telephone_home_and_digital_contacts():
    assert version_of(fx.telephone_contact_by_nurse()).visit.contact_type == "telefon"
    assert version_of(fx.telephone_contact_by_nurse()).visit.profession == "sjuksköterska"
    assert version_of(fx.home_visit()).visit.contact_type == "hembesok"
    assert version_of(fx.video_visit_samordningsnummer()).visit.contact_type == "digital"


def test_a_samordningsnummer_and_the_oid_forms_of_the_identifier_systems_are_accepted():
    v = version_of(fx.video_visit_samordningsnummer())
    assert v.visit.patient_key == patient_key(PersonId("samordningsnummer", fx.SAMORDNINGSNUMMER), KEY)
    same = version_of(fx.encounter(person_system=fx.PNR_OID))
    assert same.visit.patient_key == version_of(fx.encounter()).visit.patient_key


def test_a_personnummer_under_the_samordningsnummer_system_is_refused_without_echoing_it():
    issues = issues_of(fx.encounter(person_system=fx.SAMORDNING))
    issue = issues["Encounter.subject.identifier.value"]
    assert "personnummer" in issue.diagnostics and fx.TOLVAN not in issue.diagnostics


def test_every_problem_of_a_bad_encounter_is_named_at_its_fhirpath():
    bad = fx.encounter()
    bad["subject"]["identifier"]["value"] = "191212121213"  # wrong check digit
    bad["class"]["code"] = "IMP"  # inpatient: not a primary-care contact
    del bad["serviceProvider"]
    bad["period"]["start"] = "2026-11-03"  # a date without a time
    bad["contained"][0]["code"][0]["coding"][0]["code"] = "XX"
    issues = issues_of(bad)
    assert set(issues) == {"Encounter.subject.identifier.value", "Encounter.class", "Encounter.serviceProvider",
                           "Encounter.period.start", "Encounter.contained[0].code"}
    assert all("191212121213" not in i.diagnostics for i in issues.values())


def test_a_wrongly_typed_element_is_refused_as_unreadable_at_its_path():
    bad = fx.encounter()
    bad["participant"][0]["individual"] = 5
    bad["period"] = "yesterday"
    [entry] = read_encounter(bad, KEY).entries
    assert entry.parse_failed
    assert {i.expression for i in entry.issues} >= {"Encounter.participant[0].individual", "Encounter.period"}


def test_a_reference_to_a_practitioner_that_is_nowhere_is_a_missing_reference():
    bad = fx.encounter()
    bad["participant"][0]["individual"] = {"reference": "PractitionerRole/nowhere"}
    assert issues_of(bad)["Encounter.participant[0].individual.reference"].code == "not-found"


def test_a_bundle_resolves_patients_by_full_url_and_reports_each_bad_entry_at_its_place():
    good = fx.encounter("ok-1")
    bad = fx.encounter("bad-1", unit="not-an-hsa-id")
    read = read_bundle(fx.transaction_bundle([good, bad], "batch"), KEY, 1000)
    assert [e.resource_type for e in read.entries] == ["Patient", "Encounter", "Encounter"]
    assert read.entries[1].version.visit.patient_key == version_of(good).visit.patient_key
    assert [i.expression for i in read.entries[2].issues] == ["Bundle.entry[2].resource.serviceProvider.identifier.value"]


def test_a_bundle_over_the_entry_limit_is_refused_whole():
    read = read_bundle(fx.transaction_bundle([fx.encounter(f"e{i}") for i in range(3)]), KEY, 3)
    assert read.status == 413 and read.issues[0].code == "too-costly"


def test_a_bundle_of_another_type_or_a_resource_of_another_type_is_refused():
    assert read_bundle({"resourceType": "Bundle", "type": "document"}, KEY, 10).status == 400
    read = read_bundle({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final"}}]}, KEY, 10)
    assert read.entries[0].issues[0].code == "not-supported"


# ---------------------------------------------------------------------- versions


def test_a_resent_encounter_changes_nothing():
    v = version_of(fx.encounter())
    first = decide("ehr", None, v, NOW)
    assert first.outcome == "recorded" and [t for t, _ in first.events] == ["visit.recorded.v1"]
    again = decide("ehr", first.stored, version_of(fx.encounter()), NOW)
    assert again.outcome == "unchanged" and again.events == () and again.visit_id == first.visit_id


def test_a_new_version_cancels_the_old_visit_and_records_the_new_one():
    first = decide("ehr", None, version_of(fx.encounter()), NOW)
    moved = fx.encounter(version="2", start="2026-11-03T11:00:00+01:00")
    second = decide("ehr", first.stored, version_of(moved), NOW)
    assert second.outcome == "replaced"
    (t1, cancel), (t2, record) = second.events
    assert (t1, cancel["visit_id"], cancel["reason"]) == ("visit.cancelled.v1", first.visit_id, "entered_in_error")
    assert (t2, record["occurred_at"]) == ("visit.recorded.v1", "2026-11-03T11:00:00+01:00")
    assert record["visit_id"] != first.visit_id


def test_an_older_version_arriving_late_changes_nothing():
    second = decide("ehr", None, version_of(fx.encounter(version="2")), NOW)
    late = decide("ehr", second.stored, version_of(fx.encounter(version="1", start="2026-11-01T08:00:00+01:00")), NOW)
    assert late.outcome == "stale" and late.events == ()


def test_a_new_version_that_changes_nothing_of_the_visit_publishes_nothing():
    first = decide("ehr", None, version_of(fx.encounter()), NOW)
    other_text = fx.encounter(version="2")
    other_text["period"]["end"] = "2026-11-03T10:15:00+01:00"
    again = decide("ehr", first.stored, version_of(other_text), NOW)
    assert again.outcome == "unchanged" and again.events == () and again.stored.version_id == "2"


def test_the_same_version_id_with_different_content_is_a_conflict():
    first = decide("ehr", None, version_of(fx.encounter()), NOW)
    changed = fx.encounter(start="2026-11-03T11:00:00+01:00")
    assert decide("ehr", first.stored, version_of(changed), NOW).outcome == "conflict"


def test_a_cancelled_or_entered_in_error_encounter_cancels_its_visit_with_that_reason():
    first = decide("ehr", None, version_of(fx.encounter()), NOW)
    for status, reason in (("cancelled", "cancelled"), ("entered-in-error", "entered_in_error")):
        d = decide("ehr", first.stored, version_of(fx.encounter(version="2", status=status)), NOW)
        [(t, data)] = d.events
        assert (t, data["visit_id"], data["reason"]) == ("visit.cancelled.v1", first.visit_id, reason)
        assert d.stored.visit_id is None


def test_a_cancelled_encounter_never_seen_publishes_nothing_and_needs_no_practitioner():
    bare = {"resourceType": "Encounter", "id": "c-1", "meta": {"versionId": "3"}, "status": "cancelled",
            "class": {"system": fx.ACT, "code": "AMB"}}
    d = decide("ehr", None, version_of(bare), NOW)
    assert (d.outcome, d.events) == ("cancelled", ())


def test_without_a_version_id_the_content_is_the_version():
    a = copy.deepcopy(fx.encounter(version=None))
    first = decide("ehr", None, version_of(a), NOW)
    assert decide("ehr", first.stored, version_of(a), NOW).outcome == "unchanged"
    b = fx.encounter(version=None, start="2026-11-03T12:00:00+01:00")
    assert decide("ehr", first.stored, version_of(b), NOW).outcome == "replaced"


def test_visit_ids_are_stable_per_sender_encounter_and_version():
    v = version_of(fx.encounter())
    assert decide("ehr", None, v, NOW).visit_id == decide("ehr", None, v, NOW).visit_id
    assert decide("ehr", None, v, NOW).visit_id != decide("other-ehr", None, v, NOW).visit_id


def test_example_personnummer_have_valid_check_digits():
    from flk.security.pseudonym import parse_person_id

    assert parse_person_id(fx.personnummer(date(1950, 1, 18), 204)).kind == "personnummer"


# ---------------------------------------------------------------------- who may write


def test_only_an_ehr_integration_writes_visits_and_only_for_its_units_and_it_reads_nothing():
    from flk.security.access import may_read_patient, may_read_region_figures, may_read_unit, may_write_visits
    from flk.security.tokens import Principal, Role

    unit_bound = Principal("cosmic", Role.EHR_INTEGRATION, frozenset({fx.UNIT}))
    region_wide = Principal("national-service", Role.EHR_INTEGRATION, frozenset())
    assert may_write_visits(unit_bound, fx.UNIT) and not may_write_visits(unit_bound, "SE2321000016-OTHER")
    assert may_write_visits(region_wide, "SE2321000016-OTHER")
    for role in (Role.CLINICIAN, Role.LISTING_ADMIN, Role.SERVICE, Role.PATIENT, Role.ANALYST):
        assert not may_write_visits(Principal("x", role, frozenset({fx.UNIT})), fx.UNIT)
    assert not may_read_patient(unit_bound, "pk1_" + "a" * 26, fx.UNIT)
    assert not may_read_unit(unit_bound, fx.UNIT) and not may_read_region_figures(unit_bound)
