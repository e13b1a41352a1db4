"""The pure checks of `flk listing import` (domain/import_check.py): one specification per kind of
violation, plus the commands an imported row becomes."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from tools.simulator.generate import personnummer12
from services.listing.domain import events as ev
from services.listing.adapters.extract_file import POSITIONAL, header_columns, sniff_delimiter
from services.listing.domain.import_check import (
    ImportReference,
    ImportReport,
    PersonIndex,
    Target,
    Violation,
    classify_row,
    count_changes,
    doctors_by_unit,
    flk_command,
    listing_command,
    over_capacity,
)
from services.listing.domain.model import (
    Channel,
    DoctorList,
    EmploymentType,
    FlkAssignment,
    Initiator,
    Listing,
    ListingOrigin,
    ListKind,
    PatientRecord,
    Period,
    Person,
    PopulationStatus,
    PractitionerRole,
)
from services.listing.domain.policy import profile_for
from services.listing.domain.reasons import RuleId

ON = date(2026, 6, 1)
UNIT, OTHER_UNIT, UNKNOWN_UNIT = "SE2321000222-VCA1", "SE2321000222-VCB2", "SE2321000222-GONE"
DOCTOR, DOCTOR_2, ST, LOCUM = "SE-L001", "SE-L002", "SE-L003", "SE-L900"
VASTMANLAND = profile_for("vastmanland", ON)
NATIONAL = profile_for("national", ON)
KRONOBERG = profile_for("kronoberg", ON)
PNR = personnummer12(date(1950, 1, 1), 123)
PNR_2 = personnummer12(date(1960, 2, 2), 456)


def a_role(role_id: str, practitioner: str, employment: EmploymentType = EmploymentType.TILLSVIDARE,
           fte: str = "1.0", individual: int | None = None, unit: str = UNIT) -> PractitionerRole:
    return PractitionerRole(role_id, practitioner, unit, "läkare", True, employment, "allmanmedicin", Decimal(fte),
                            Period(date(2020, 1, 1)), individual)


ROLES = {r.role_id: r for r in (
    a_role("r1", DOCTOR), a_role("r2", DOCTOR_2), a_role("rst", ST, EmploymentType.ST_ALLMANMEDICIN, "0.5"),
    a_role("rhyr", LOCUM, EmploymentType.HYR),
)}
LISTS = {lst.list_id: lst for lst in (
    DoctorList("L-r1", UNIT, "Norberg Dr 1", ListKind.DOCTOR, "r1"),
    DoctorList("L-r2", UNIT, "Norberg Dr 2", ListKind.DOCTOR, "r2"),
    DoctorList("L-rst", UNIT, "Norberg Dr ST", ListKind.DOCTOR, "rst"),
    DoctorList("L-rhyr", UNIT, "Norberg Dr hyr", ListKind.DOCTOR, "rhyr"),
    DoctorList("F-X", UNIT, "Norberg Dr X", ListKind.FICTIVE),
)}
REFERENCE = ImportReference(frozenset({UNIT, OTHER_UNIT}), doctors_by_unit(list(LISTS.values()), ROLES, ON))


def check(fields: tuple[str, ...], policy=VASTMANLAND, line: int = 2):
    return classify_row(line, fields, POSITIONAL, REFERENCE, policy, ON)


def rows(*fields_per_line: tuple[str, ...], policy=VASTMANLAND):
    return [check(f, policy, line).row for line, f in enumerate(fields_per_line, start=2)]


# --------------------------------------------------------------------------- row checks


def test_invalid_personnummer_skips_the_row():
    bad = PNR[:-1] + str((int(PNR[-1]) + 1) % 10)  # wrong Luhn digit
    checked = check((bad, UNIT, DOCTOR, "tillsvidare"))
    assert checked.row is None
    assert checked.violations == (Violation.INVALID_PERSON_ID,)


def test_samordningsnummer_is_a_valid_person_id():
    body = "19500161" + "123"  # born 1950-01-01, day + 60
    from stdnum import luhn

    number = body + luhn.calc_check_digit(body[2:])
    checked = check((number, UNIT, "", ""))
    assert checked.row is not None and checked.row.person.kind == "samordningsnummer"


def test_a_row_without_unit_is_malformed():
    assert check((PNR,)).violations == (Violation.MALFORMED_ROW,)


def test_L3_unknown_unit_skips_the_row():
    checked = check((PNR, UNKNOWN_UNIT, DOCTOR, "tillsvidare"))
    assert checked.row is None
    assert checked.violations == (Violation.UNKNOWN_UNIT,)
    assert Violation.UNKNOWN_UNIT.rule_id is RuleId.L3


@pytest.mark.parametrize("spelling", ["hyr", "stafett", "Stafettläkare", "konsult"])
def test_F2_locum_is_not_flk_in_vastmanland_and_goes_on_the_fictive_list(spelling):
    checked = check((PNR, UNIT, LOCUM, spelling))
    assert checked.violations == (Violation.LOCUM_AS_FLK,)
    assert checked.row is not None and checked.row.target is Target.FICTIVE
    assert Violation.LOCUM_AS_FLK.rule_id is RuleId.F2
    assert "fictive list" in Violation.LOCUM_AS_FLK.message_en


def test_F2_locum_is_found_from_the_roster_when_the_extract_leaves_employment_empty():
    checked = check((PNR, UNIT, LOCUM, ""))
    assert checked.violations == (Violation.LOCUM_AS_FLK,)


def test_F2_a_locum_may_be_flk_under_the_national_profile():
    checked = check((PNR, UNIT, LOCUM, "hyr"), policy=NATIONAL)
    assert checked.violations == ()
    assert checked.row is not None and checked.row.target is Target.NAMED and checked.row.list_id == "L-rhyr"


def test_st_lakare_is_eligible_as_flk_in_vastmanland():
    checked = check((PNR, UNIT, ST, "ST"))
    assert checked.violations == () and checked.row.list_id == "L-rst"


def test_F4_unknown_doctor_lists_the_person_without_flk():
    checked = check((PNR, UNIT, "SE-NOBODY", "tillsvidare"))
    assert checked.violations == (Violation.UNKNOWN_DOCTOR,)
    assert checked.row is not None and checked.row.target is Target.NONE


def test_F4_a_doctor_of_another_unit_is_unknown_at_this_one():
    checked = check((PNR, OTHER_UNIT, DOCTOR, "tillsvidare"))
    assert checked.violations == (Violation.UNKNOWN_DOCTOR,)


def test_unknown_employment_type_lists_the_person_without_flk():
    checked = check((PNR, UNIT, DOCTOR, "vikarie"))
    assert checked.violations == (Violation.UNKNOWN_EMPLOYMENT_TYPE,)
    assert checked.row.target is Target.NONE


def test_a_row_without_doctor_is_a_listing_only():
    checked = check((PNR, UNIT, "", ""))
    assert checked.violations == () and checked.row.target is Target.NONE


# --------------------------------------------------------------------------- the file format


def test_header_row_is_recognised_by_column_names_in_any_order():
    columns = header_columns(["\ufeffcare_unit_id", "Personnummer", "extra", "practitioner_id"])
    assert columns == {"care_unit_id": 0, "person_id": 1, "practitioner_id": 3}


def test_a_data_row_is_not_a_header():
    assert header_columns([PNR, UNIT, DOCTOR, "tillsvidare"]) is None


def test_a_header_without_the_unit_column_is_refused():
    with pytest.raises(ValueError, match="care_unit_id"):
        header_columns(["person_id", "practitioner_id"])


def test_semicolon_separated_extracts_are_recognised():
    assert sniff_delimiter("person_id;care_unit_id;practitioner_id\n") == ";"
    assert sniff_delimiter("person_id,care_unit_id\n") == ","


# --------------------------------------------------------------------------- across rows


def observe_all(index: PersonIndex, checked_rows):
    return [found for row in checked_rows for found in index.observe(row)]


def test_L1_a_person_at_two_units_is_reported_with_both_lines_and_not_imported():
    index = PersonIndex(VASTMANLAND)
    found = observe_all(index, rows((PNR, UNIT, DOCTOR, ""), (PNR_2, UNIT, "", ""), (PNR, OTHER_UNIT, "", ""),
                                    (PNR, UNIT, "", "")))
    assert found[0] == (Violation.SEVERAL_LISTINGS, (2, 4), True)
    assert found[1] == (Violation.SEVERAL_LISTINGS, (5,), False)
    first = rows((PNR, UNIT, "", ""))[0]
    assert index.verdict(first.person).import_listing is False
    assert index.verdict(rows((PNR_2, UNIT, "", ""))[0].person).import_listing is True


def test_F5_two_doctors_for_one_person_outside_kronoberg_keep_the_listing_without_flk():
    index = PersonIndex(VASTMANLAND)
    found = observe_all(index, rows((PNR, UNIT, DOCTOR, ""), (PNR, UNIT, DOCTOR_2, "")))
    assert found == [(Violation.SEVERAL_FLK, (2, 3), True)]
    verdict = index.verdict(rows((PNR, UNIT, "", ""))[0].person)
    assert verdict.import_listing and not verdict.import_flk


def test_F5_kronoberg_accepts_several_flk_for_one_person():
    index = PersonIndex(KRONOBERG)
    assert observe_all(index, rows((PNR, UNIT, DOCTOR, ""), (PNR, UNIT, DOCTOR_2, ""), policy=KRONOBERG)) == []


def test_a_duplicate_row_is_ignored_not_a_conflict():
    index = PersonIndex(VASTMANLAND)
    found = observe_all(index, rows((PNR, UNIT, DOCTOR, ""), (PNR, UNIT, DOCTOR, "tillsvidare")))
    assert found == [(Violation.DUPLICATE_ROW, (3,), False)]
    assert index.verdict(rows((PNR, UNIT, "", ""))[0].person).import_flk


def test_the_index_remembers_each_persons_last_line():
    index = PersonIndex(VASTMANLAND)
    observe_all(index, rows((PNR, UNIT, "", ""), (PNR_2, UNIT, "", ""), (PNR, UNIT, DOCTOR, "")))
    assert index.verdict(rows((PNR, UNIT, "", ""))[0].person).last_line == 4


# --------------------------------------------------------------------------- F6


def test_F6_a_list_above_1100_times_fte_is_over_capacity():
    found = over_capacity({"L-r1": 1101, "L-r2": 1100}, LISTS, ROLES, VASTMANLAND)
    assert [(o.list_id, o.list_size, o.capacity, o.basis) for o in found] == [
        ("L-r1", 1101, 1100, "specialist_benchmark")]


def test_F6_an_st_lakare_has_550_times_fte():
    found = over_capacity({"L-rst": 276}, LISTS, ROLES, VASTMANLAND)
    assert [(o.capacity, o.basis, o.fte) for o in found] == [(275, "st_benchmark", "0.5")]


def test_F6_an_individually_agreed_number_wins_and_fictive_lists_have_no_capacity():
    roles = {**ROLES, "r1": a_role("r1", DOCTOR, individual=10)}
    found = over_capacity({"L-r1": 11, "F-X": 5000}, LISTS, roles, VASTMANLAND)
    assert [(o.list_id, o.capacity, o.basis) for o in found] == [("L-r1", 10, "individual")]


def test_count_changes_keeps_unit_and_list_counters():
    listed, sizes = {UNIT: 3}, {"L-r1": 7}
    count_changes([
        ev.ListingStarted(patient_key="pk", care_unit_id=UNIT, started_on=ON, responsibility_from=ON,
                          origin=ListingOrigin.IMPORT, channel=Channel.IMPORT, initiated_by=Initiator.REGION),
        ev.FastLakarkontaktAssigned(patient_key="pk", list_id="L-r1", care_unit_id=UNIT, list_kind=ListKind.DOCTOR,
                                    practitioner_id=DOCTOR, coordinating=True, assigned_on=ON),
    ], listed, sizes)
    assert listed == {UNIT: 4} and sizes == {"L-r1": 8}


# --------------------------------------------------------------------------- commands


def a_record(listing_unit: str | None = None, on_list: tuple[str, ListKind] | None = None) -> PatientRecord:
    person = Person("pk1_" + "a" * 26, PopulationStatus.FOLKBOKFORD, "19")
    listings = (Listing(listing_unit, ON, Period(ON), ListingOrigin.ACTIVE_CHOICE, Channel.EHR, Initiator.PERSON),
                ) if listing_unit else ()
    assignments = (FlkAssignment(on_list[0], UNIT, on_list[1], None, True, Period(ON)),) if on_list else ()
    return PatientRecord(person=person, listings=listings, assignments=assignments)


def test_an_imported_listing_is_a_region_placement_through_the_import_channel():
    row = rows((PNR, UNIT, "", ""))[0]
    command = listing_command("pk", row, a_record(), ON)
    assert (command.origin, command.channel, command.initiated_by) == (
        ListingOrigin.IMPORT, Channel.IMPORT, Initiator.REGION)


def test_reimporting_a_listing_the_register_holds_changes_nothing():
    row = rows((PNR, UNIT, "", ""))[0]
    assert listing_command("pk", row, a_record(UNIT), ON) is None


def test_L1_a_newer_listing_elsewhere_in_the_register_is_not_overwritten():
    row = rows((PNR, UNIT, "", ""))[0]
    assert listing_command("pk", row, a_record(OTHER_UNIT), ON) is Violation.LISTED_ELSEWHERE


def test_a_fictive_placement_never_replaces_a_named_flk():
    record = a_record(UNIT, ("L-r1", ListKind.DOCTOR))
    assert flk_command("pk", "F-X", ListKind.FICTIVE, record, ON) is None
    assert flk_command("pk", "L-r1", ListKind.DOCTOR, record, ON) is None
    assert flk_command("pk", "L-r2", ListKind.DOCTOR, record, ON).list_id == "L-r2"


# --------------------------------------------------------------------------- the report


def test_the_report_counts_rows_and_persons_and_never_holds_a_person_id():
    report = ImportReport(profile=VASTMANLAND.ref, as_of=ON, dry_run=True, max_lines=2)
    report.add(Violation.SEVERAL_LISTINGS, [2, 5], new_person=True)
    report.add(Violation.SEVERAL_LISTINGS, [7], new_person=False)
    report.add(Violation.INVALID_PERSON_ID, [9])
    data = report.as_json()
    several = next(f for f in data["findings"] if f["code"] == "several_listings")
    assert (several["rows"], several["persons"], several["lines"], several["lines_truncated"]) == (3, 1, [2, 5], True)
    assert report.violations == 4
    assert PNR not in json.dumps(data) and PNR[2:] not in json.dumps(data)
