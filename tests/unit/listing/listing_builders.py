"""Scenario builders for the listing domain tests (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.evolve import evolve_all
from services.listing.domain.model import (
    ALLMANMEDICIN,
    GERIATRIK,
    LAKARE,
    PEDIATRIK,
    CareUnit,
    DoctorList,
    EmploymentType,
    ListingState,
    ListKind,
    Period,
    Person,
    PopulationStatus,
    PractitionerRole,
    fictive_list_display_name,
)
from services.listing.domain.policy import profile_for
from services.listing.domain.rules import decide

REGION = "19"
OTHER_REGION = "07"
DAY = date(2024, 3, 1)

UNIT_A = "SE2321000222-VCA"
UNIT_B = "SE2321000222-VCB"
UNIT_CLOSED = "SE2321000222-VCC"
UNIT_A_NAME = "Vårdcentralen Norberg"
CHEF_A = "SE2321000222-CHEF"

# practitioner roles at unit A (and one at B)
ROLE_SPEC = "role-spec"
ROLE_SPEC2 = "role-spec2"
ROLE_ST = "role-st"
ROLE_HYR = "role-hyr"
ROLE_KONSULT = "role-konsult"
ROLE_GER = "role-ger"
ROLE_PED = "role-ped"
ROLE_OTHER_SPEC = "role-ortoped"
ROLE_UNLICENSED = "role-unlicensed"
ROLE_NURSE = "role-nurse"
ROLE_B = "role-b"

# lists (a list id differs from its role id on purpose: a list outlives its doctor)
LIST_SPEC = "list-spec"
LIST_SPEC2 = "list-spec2"
LIST_ST = "list-st"
LIST_HYR = "list-hyr"
LIST_KONSULT = "list-konsult"
LIST_GER = "list-ger"
LIST_PED = "list-ped"
LIST_OTHER_SPEC = "list-ortoped"
LIST_UNLICENSED = "list-unlicensed"
LIST_NURSE = "list-nurse"
LIST_FICTIVE = "list-fictive-x"
LIST_B = "list-b"

ADULT = "p-adult"
CHILD = "p-child"
ELDER = "p-elder"


def role(
    role_id: str,
    *,
    unit: str = UNIT_A,
    employment: EmploymentType = EmploymentType.TILLSVIDARE,
    specialty: str | None = ALLMANMEDICIN,
    profession: str = LAKARE,
    legitimerad: bool = True,
    fte: str = "1.0",
    individual_capacity: int | None = None,
    start: date = date(2015, 1, 1),
) -> PractitionerRole:
    return PractitionerRole(
        role_id=role_id,
        practitioner_id=f"hsa-{role_id}",
        care_unit_id=unit,
        profession=profession,
        legitimerad=legitimerad,
        employment_type=employment,
        specialty=specialty,
        fte=Decimal(fte),
        period=Period(start),
        individual_capacity=individual_capacity,
    )


def person(
    key: str = ADULT,
    *,
    birth: date | None = date(1980, 5, 17),
    region: str = REGION,
    status: PopulationStatus = PopulationStatus.FOLKBOKFORD,
    protected: bool = False,
    sabo: bool = False,
    guardians: frozenset[str] | None = None,
) -> Person:
    return Person(
        patient_key=key,
        population_status=status,
        home_region=region,
        birth_date=birth,
        protected_identity=protected,
        sabo_resident=sabo,
        guardian_keys=guardians,
    )


def units() -> list[CareUnit]:
    return [
        CareUnit(UNIT_A, UNIT_A_NAME, REGION, contracts=(Period(date(2015, 1, 1)),), verksamhetschef_hsa_id=CHEF_A),
        CareUnit(UNIT_B, "Vårdcentralen Arboga", REGION, contracts=(Period(date(2015, 1, 1)),)),
        CareUnit(
            UNIT_CLOSED, "Vårdcentralen Stängd", REGION, contracts=(Period(date(2015, 1, 1), date(2023, 1, 1)),)
        ),
    ]


def roles() -> list[PractitionerRole]:
    return [
        role(ROLE_SPEC),
        role(ROLE_SPEC2),
        role(ROLE_ST, employment=EmploymentType.ST_ALLMANMEDICIN),
        role(ROLE_HYR, employment=EmploymentType.HYR),
        role(ROLE_KONSULT, employment=EmploymentType.KONSULT),
        role(ROLE_GER, specialty=GERIATRIK),
        role(ROLE_PED, specialty=PEDIATRIK),
        role(ROLE_OTHER_SPEC, specialty="ortopedi"),
        role(ROLE_UNLICENSED, legitimerad=False),
        role(ROLE_NURSE, profession="sjuksköterska", specialty=None),
        role(ROLE_B, unit=UNIT_B),
    ]


def lists() -> list[DoctorList]:
    named = [
        (LIST_SPEC, ROLE_SPEC, UNIT_A),
        (LIST_SPEC2, ROLE_SPEC2, UNIT_A),
        (LIST_ST, ROLE_ST, UNIT_A),
        (LIST_HYR, ROLE_HYR, UNIT_A),
        (LIST_KONSULT, ROLE_KONSULT, UNIT_A),
        (LIST_GER, ROLE_GER, UNIT_A),
        (LIST_PED, ROLE_PED, UNIT_A),
        (LIST_OTHER_SPEC, ROLE_OTHER_SPEC, UNIT_A),
        (LIST_UNLICENSED, ROLE_UNLICENSED, UNIT_A),
        (LIST_NURSE, ROLE_NURSE, UNIT_A),
        (LIST_B, ROLE_B, UNIT_B),
    ]
    return [DoctorList(lid, unit, f"Dr {rid}", ListKind.DOCTOR, rid) for lid, rid, unit in named] + [
        DoctorList(LIST_FICTIVE, UNIT_A, fictive_list_display_name(UNIT_A_NAME, "X"), ListKind.FICTIVE, ROLE_HYR)
    ]


def world(*persons: Person, **overrides: object) -> ListingState:
    state = ListingState.build(
        persons=persons or (person(),),
        units=units(),
        roles=roles(),
        lists=lists(),
    )
    return replace(state, **overrides) if overrides else state


def with_unit(state: ListingState, unit: CareUnit) -> ListingState:
    units_ = dict(state.units)
    units_[unit.hsa_id] = unit
    return replace(state, units=units_)


def with_role(state: ListingState, r: PractitionerRole) -> ListingState:
    roles_ = dict(state.roles)
    roles_[r.role_id] = r
    return replace(state, roles=roles_)


def run(
    state: ListingState, command: cmd.Command, profile: str = "vastmanland"
) -> tuple[list[ev.Event], ListingState]:
    """decide under the profile version valid on the command's date, then evolve."""
    events = decide(state, command, profile_for(profile, command.effective_date))
    return events, evolve_all(state, events)


def accepted(state: ListingState, command: cmd.Command, profile: str = "vastmanland") -> ListingState:
    events, new_state = run(state, command, profile)
    rejected = [e for e in events if isinstance(e, ev.REJECTIONS)]
    assert not rejected, rejected
    return new_state


def listed(
    state: ListingState,
    key: str = ADULT,
    unit: str = UNIT_A,
    on: date = DAY,
    profile: str = "vastmanland",
    **kw: object,
) -> ListingState:
    """List a person (a minor with the consent of their one guardian)."""
    kw.setdefault("consenting_guardian_keys", frozenset({f"guardian-of-{key}"}))
    kw.setdefault("guardian_count", 1)
    return accepted(state, cmd.RequestListing(patient_key=key, care_unit_id=unit, effective_date=on, **kw), profile)


def assigned(
    state: ListingState,
    list_id: str,
    key: str = ADULT,
    on: date = DAY,
    profile: str = "vastmanland",
    **kw: object,
) -> ListingState:
    return accepted(
        state, cmd.AssignFastLakarkontakt(patient_key=key, list_id=list_id, effective_date=on, **kw), profile
    )


def only_rejection(events: list[ev.Event]) -> ev.ListingRejected | ev.AssignmentRejected | ev.RecordRejected:
    assert len(events) == 1 and isinstance(events[0], ev.REJECTIONS), events
    return events[0]


def types_of(events: list[ev.Event]) -> list[type]:
    return [type(e) for e in events]
