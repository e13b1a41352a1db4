"""Regional policy profiles: versioned configuration with validity dates.

A profile version applies from ``valid_from`` (inclusive) to ``valid_to`` (exclusive, ``None``
= until further notice), like every period in the domain. ``decide`` uses the version valid on
the command's effective date: resolve it with :func:`profile_for`.

Regional differences are values here, never code branches. Each value says where it comes from:
``docs/domain.md §3 Xn`` (the project's domain reference, which cites the law and the seed documents), a seed file
(``seed 001`` Västmanland, ``seed 003`` Kronoberg, ``seed 004`` Kalmar), or ``project choice``
when the sources are silent and the project had to pick a default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from types import MappingProxyType

from .model import ALLMANMEDICIN, GERIATRIK, PEDIATRIK, EmploymentType, ExemptionReason

# Patient groups a specialty may be limited to (F2).
GROUP_ELDERLY = "elderly"
GROUP_CHILDREN = "children"

# Person groups that may be exempt from L4 or L7.
GROUP_NEWBORN = "newborn"
GROUP_SABO = "sabo"


class UnknownProfile(LookupError):
    pass


class NoProfileVersion(LookupError):
    pass


class PolicyNotApplicable(ValueError):
    """Raised when decide() is given a profile version that is not valid on the command's date."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyProfile:
    """Every switch and number the listing rules read. See module doc for the source notation."""

    name: str
    version: int
    valid_from: date
    valid_to: date | None = None  # exclusive
    region_code: str | None = None  # länskod (as in schemas common region_code), None = national

    # L4 — residency
    l4_residency_required: bool = True
    l4_exception_groups: frozenset[str] = frozenset()
    l4_end_listing_when_moved_out_of_region: bool = True

    # L5 — switch limit
    l5_enforced: bool = True
    l5_max_person_initiated_changes: int = 2
    l5_window_months: int = 12
    l5_exemption_reasons: frozenset[ExemptionReason] = frozenset(ExemptionReason)

    # L6 — responsibility start
    l6_responsibility_offset_days: int = 1

    # L7 — listing limits
    l7_enforced: bool = True
    l7_newborn_max_age_days: int = 365

    # F2 — eligibility. ``f2_specialties`` None = any specialty; otherwise specialty -> patient
    # group it is limited to (None = all patients).
    f2_allowed_employment_types: frozenset[EmploymentType] = frozenset(EmploymentType)
    f2_specialties: tuple[tuple[str, str | None], ...] | None = None
    f2_elderly_min_age: int = 65
    f2_sabo_counts_as_elderly: bool = True

    # F3 — fictive lists
    f3_fictive_lists_enabled: bool = True

    # F4 — where an FLK works: only at the listing unit, or (Kronoberg, seed 003) also at another unit
    # where the patient has their main contact, the coordinating one at the listing unit when it has one
    f4_flk_outside_listing_unit: bool = False

    # F5 — number of FLKs (None = several, exactly one coordinating)
    f5_max_fast_lakarkontakter: int | None = 1

    # F6 — capacity
    f6_specialist_patients_per_fte: int = 1100
    f6_st_patients_per_fte: int = 550
    f6_warn_above_capacity: bool = True
    f6_hard_cap_per_fte: int | None = None

    # F7 — decline
    f7_declined_suppresses_alerts: bool = True

    # F8 — doctor leaves
    f8_end_assignments_when_role_ends: bool = True

    # P3 — minors
    p3_minor_below_age: int = 18
    p3_guardian_consent_required: bool = True
    p3_all_guardians_must_consent: bool = True
    # how long a guardian's request for a minor waits for the other guardian's consent (days)
    p3_consent_wait_days: int = 30

    # RUB focus (docs/domain.md §1, §6; seed 004)
    rub_high_need_bands: frozenset[int] = frozenset({4, 5})
    rub_high_need_requires_fast_vardkontakt: bool = False

    def __post_init__(self) -> None:
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError(f"{self.ref}: valid_to must be after valid_from")
        if self.p3_consent_wait_days < 1:
            raise ValueError(f"{self.ref}: p3_consent_wait_days must be >= 1")
        if self.f5_max_fast_lakarkontakter is not None and self.f5_max_fast_lakarkontakter < 1:
            raise ValueError(f"{self.ref}: f5_max_fast_lakarkontakter must be >= 1 or None")

    @property
    def ref(self) -> str:
        """``name@version``, recorded on decisions for audit."""
        return f"{self.name}@{self.version}"

    def applies_on(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on < self.valid_to)

    def specialty_group(self, specialty: str | None) -> tuple[bool, str | None]:
        """(eligible, patient group it is limited to) for a specialty under F2."""
        if self.f2_specialties is None:
            return True, None
        groups = dict(self.f2_specialties)
        if specialty not in groups:
            return False, None
        return True, groups[specialty]


# --------------------------------------------------------------------------- the profiles

# Law: patientlagen (2014:821) in force 2015-01-01; HSL 7 kap. 3–3 c §§ and PL 6 kap. 3 § amended
# 2022-07-01 (docs/domain.md §1). Project choice: one national version from 2015-01-01 — nothing the
# listing rules read changed with the 2022 amendment in a way the sources pin to a date.
NATIONAL_V1 = PolicyProfile(
    name="national",
    version=1,
    valid_from=date(2015, 1, 1),
    # L4: docs/domain.md §3 L4 asks for a configured exception group; which groups is not in the sources.
    # Project choice: persons folkbokförda elsewhere who choose a unit in this region
    # ("other_region_choice") and newborns not yet registered.
    l4_exception_groups=frozenset({"other_region_choice", GROUP_NEWBORN}),
    # L4: a person who moves to another region leaves this region's listing (project choice; the
    # docs/domain.md is silent; set False where listings in the old region are kept).
    l4_end_listing_when_moved_out_of_region=True,
    # L5: docs/domain.md §3 L5 (2 per rolling 12 months, exemptions särskilda skäl / unit closed / move,
    # enforcement switchable).
    # L6: docs/domain.md §3 L6 (day after registration).
    # L7: docs/domain.md §3 L7 (limits with exemptions); "newborn" = under 365 days old: project choice.
    # F1: seed 000 ("ska vara en läkare"), seed 003 (legitimerad läkare) — not switchable.
    # F2: docs/domain.md §3 F2 — nationally any legitimerad läkare (no national definition, seed 001:
    #     "Nationell definition om vem som kan vara fast läkarkontakt saknas").
    # F3: fictive lists allowed everywhere: project choice (seed 001 describes them for Västmanland).
    # F5: docs/domain.md §3 F5 — at most one FLK outside Kronoberg.
    # F6: docs/domain.md §1 (Socialstyrelsen riktvärde 1 100 per full-time specialist, 550 per ST-läkare;
    #     neither floor nor ceiling → warn only, no hard cap).
    # F7: docs/domain.md §3 F7 (declined patients do not raise alerts).
    # F8: docs/domain.md §3 F8 — the sources have no rule; project choice, a setting.
    # P3: docs/domain.md §3 P3 — guardians list the child; "all guardians" is regional. Project choice:
    #     all guardians must consent by default (guardians decide jointly, föräldrabalken 6 kap.).
    #     A request by one of two guardians waits p3_consent_wait_days (30) for the other's consent,
    #     then expires: project choice (the seeds say nothing about guardian consent; 30 days is a
    #     month for a guardian to answer a 1177 message), the same in every profile until a region
    #     decides otherwise.
    # RUB: docs/domain.md §6 — RUB 4–5 patients without FLK raise alerts.
)

# Kalmar: national defaults + RUB focus. Seed 004: "Vårdenheten ska säkerställa att patienter med
# ett stort vårdbehov identifierat med hjälp av RUB har en fast läkarkontakt ... [och] en fast
# vårdkontakt"; riktvärde 1 100 (same as national); ST-läkare start with fewer listed patients
# (national 550 × FTE or an individual number on the role). Seed 004 is undated: valid_from is the
# national start, project choice.
KALMAR_V1 = replace(
    NATIONAL_V1,
    name="kalmar",
    region_code="08",
    rub_high_need_bands=frozenset({4, 5}),  # seed 004 ("RUB 4 och 5")
    rub_high_need_requires_fast_vardkontakt=True,  # seed 004
)

# Kronoberg, before its FLK definition: national defaults (project choice).
KRONOBERG_V1 = replace(
    NATIONAL_V1,
    name="kronoberg",
    region_code="07",
    valid_to=date(2020, 9, 1),
)
# Seed 003: definition decided in August 2020 (page updated 2020-09-23); exact day not given →
# project choice 2020-09-01. "En patient kan ha flera fasta läkarkontakter, varav en ... har en
# sammanhållande funktion" → several FLKs, exactly one coordinating. "Vara legitimerad läkare" = F1.
# "Ska erbjudas i första hand i primärvården och/eller där patienten har sin huvudsakliga kontakt på
# andra enheter" → an FLK may also work at another unit (outside primary care too); the coordinating
# one is at the listing unit whenever the patient has an FLK there (primary care first).
KRONOBERG_V2 = replace(
    KRONOBERG_V1,
    version=2,
    valid_from=date(2020, 9, 1),
    valid_to=None,
    f4_flk_outside_listing_unit=True,  # seed 003
    f5_max_fast_lakarkontakter=None,  # seed 003
)

# Västmanland, before the FLK definition: national defaults (project choice).
VASTMANLAND_V1 = replace(
    NATIONAL_V1,
    name="vastmanland",
    region_code="19",
    valid_to=date(2021, 9, 21),
)
# Seed 001 (Vårdvalsinfo 14/21, 2021-08-19): lists were to be cleaned by 21/9 before moving to
# FLISA → valid_from 2021-09-21 (project choice; the letter calls the definition preliminary).
VASTMANLAND_V2 = replace(
    VASTMANLAND_V1,
    version=2,
    valid_from=date(2021, 9, 21),
    valid_to=None,
    # Seed 001: "Fast anställd läkare"; "ST-läkare i allmänmedicin kan vara fast läkarkontakt";
    # "inte gå att lista fast läkarkontakt på hyr/stafett/konsultläkare".
    f2_allowed_employment_types=frozenset({EmploymentType.TILLSVIDARE, EmploymentType.ST_ALLMANMEDICIN}),
    # docs/domain.md §3 F2: specialist in allmänmedicin, or geriatrics/paediatrics for their patient groups.
    # Elderly = 65+ or SÄBO resident, children = under 18: project choice.
    f2_specialties=(
        (ALLMANMEDICIN, None),
        (GERIATRIK, GROUP_ELDERLY),
        (PEDIATRIK, GROUP_CHILDREN),
    ),
    # Seed 001: locums' patients on fictive lists "<VC> Dr X", not shown on 1177.
    f3_fictive_lists_enabled=True,
    # Seed 001: ST list size agreed individually → PractitionerRole.individual_capacity; the
    # national 550 × FTE is only the fallback when none is recorded.
)


def _registry(profiles: Iterable[PolicyProfile]) -> Mapping[str, tuple[PolicyProfile, ...]]:
    by_name: dict[str, list[PolicyProfile]] = {}
    for p in profiles:
        by_name.setdefault(p.name, []).append(p)
    return MappingProxyType({k: tuple(sorted(v, key=lambda p: p.valid_from)) for k, v in by_name.items()})


PROFILES: Mapping[str, tuple[PolicyProfile, ...]] = _registry(
    [NATIONAL_V1, KALMAR_V1, KRONOBERG_V1, KRONOBERG_V2, VASTMANLAND_V1, VASTMANLAND_V2]
)


def registry_problems(profiles: Mapping[str, tuple[PolicyProfile, ...]] = PROFILES) -> list[str]:
    """Overlaps, gaps, and version-order problems in a registry (empty when it is sound)."""
    problems: list[str] = []
    for name, versions in profiles.items():
        for p in versions:
            if p.name != name:
                problems.append(f"{p.ref} is registered under {name!r}")
        for earlier, later in zip(versions, versions[1:], strict=False):
            if later.version <= earlier.version:
                problems.append(f"{name}: version {later.version} does not follow {earlier.version}")
            if earlier.valid_to is None or earlier.valid_to > later.valid_from:
                problems.append(f"{name}: {earlier.ref} overlaps {later.ref}")
            elif earlier.valid_to < later.valid_from:
                problems.append(f"{name}: gap between {earlier.ref} and {later.ref}")
    return problems


def known_profile(name: str) -> str:
    """``name`` if it is a policy profile; else a ValueError naming the known ones (settings validate with it)."""
    if name not in PROFILES:
        raise ValueError(f"unknown policy profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    return name


def profile_for(
    name: str, on_date: date, profiles: Mapping[str, tuple[PolicyProfile, ...]] = PROFILES
) -> PolicyProfile:
    """The version of profile ``name`` valid on ``on_date``."""
    try:
        versions = profiles[name]
    except KeyError:
        raise UnknownProfile(f"no policy profile named {name!r}") from None
    for p in versions:
        if p.applies_on(on_date):
            return p
    raise NoProfileVersion(f"policy profile {name!r} has no version valid on {on_date.isoformat()}")
