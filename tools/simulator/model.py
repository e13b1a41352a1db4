"""The synthetic region's objects: care units, practitioner roles, fictive lists and persons.

Dates are kept as proleptic ordinals (``date.toordinal()``) and times as seconds since the
Unix epoch (UTC): cheap to compare and to sort, formatted only when an event is written.
Mutable on purpose: one area's objects live for the area's simulation and are then dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOCTOR = "läkare"

#: employment types (common.v1.json#/$defs/employment_type)
PERMANENT = "tillsvidare"
ST = "st_allmanmedicin"
LOCUM_TYPES = ("hyr", "konsult")
FLK_ELIGIBLE = (PERMANENT, ST)  # F2 (Västmanland): no hyr/stafett/konsult


@dataclass(slots=True, eq=False)
class Role:
    """A practitioner's role at a unit (what the roster publishes). One list per doctor role."""

    role_id: str
    practitioner_id: str
    unit: int  # index into the area's units
    profession: str
    employment_type: str
    specialty: str | None
    fte: float
    valid_from: int  # ordinal
    valid_to: int | None  # ordinal of the first day without the role (ended_on), None = open
    slot: int  # the staffing slot it fills (a replacement takes the same slot)
    individual_capacity: int | None = None
    cap: int = 0  # F6 list capacity: 1 100 × FTE, the ST's agreed size, 0 = cannot hold a list
    list_size: int = 0  # named-FLK patients on the doctor's list

    @property
    def list_id(self) -> str:
        return f"L-{self.role_id}"

    @property
    def is_doctor(self) -> bool:
        return self.profession == DOCTOR

    @property
    def flk_eligible(self) -> bool:
        return self.profession == DOCTOR and self.employment_type in FLK_ELIGIBLE

    def active_on(self, day: int) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


@dataclass(slots=True, eq=False)
class FictiveList:
    """A unit's fictive list "<VC> Dr X" for a locum slot's patients (F3): not a named FLK."""

    list_id: str
    unit: int
    display_name: str
    locum_slot: int  # the unit's locum slot whose current locum sees these patients


@dataclass(slots=True, eq=False)
class Unit:
    index: int
    hsa_id: str
    name: str
    municipality_code: str
    relies_on_locums: bool
    weight: float  # relative share of the area's listed population
    kpc_with_flk: float  # P(doctor visit with own FLK | FLK active)
    usual_without_flk: float  # P(doctor visit with the informal usual doctor | no FLK)
    nurse_continuity: float
    flk_factor: float  # unit effect on initial named-FLK coverage
    roles: list[Role] = field(default_factory=list)  # every role ever, in start order
    fictive_lists: list[FictiveList] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Person:
    """What the simulation keeps per person between months (no personnummer: keys only)."""

    serial: int
    key: str
    birth: int  # ordinal
    municipality_code: str
    unit: int  # listing unit index, -1 = not listed
    rub: int
    sabo: bool = False
    sabo_residence_id: str | None = None
    sabo_from: int = 0  # ordinal
    protected: bool = False
    flk: Role | None = None  # named FLK
    fictive: FictiveList | None = None
    usual_doctor: Role | None = None
    usual_nurse: Role | None = None
    flk_lost_on: int = 0  # ordinal when the FLK's doctor left (0 = not lost)
    last_relisted: int = 0
    gone: bool = False  # deceased, emigrated or moved out
    rub_reported: int = -1  # last RUB emitted by the ACG feed
    #: P3: the register's vårdnadshavare (pseudonymous keys), stated for a person registered as a minor
    guardian_keys: tuple[str, ...] | None = None
    #: P3: the second guardian's answer still to come (removed if the child leaves before it)
    consent_item: Any = None

    def age_on(self, day: int) -> float:
        return (day - self.birth) / 365.25
