"""F6 — a doctor's list size against capacity. Pure numbers; WARN, never a block on the national figure.

Capacity is, in order: the individually agreed list size on the role (ST-läkare in
Västmanland, seed 001; new doctors in Kalmar, seed 004), else ``550 × FTE`` for an ST-läkare,
else ``1 100 × FTE`` (Socialstyrelsen riktvärde, docs/domain.md §1). A profile may add a regional hard
cap (``f6_hard_cap_per_fte``), which is the only thing that blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .events import CapacityBasis
from .model import EmploymentType, PractitionerRole
from .policy import PolicyProfile


@dataclass(frozen=True, slots=True)
class Capacity:
    patients: int
    basis: CapacityBasis


@dataclass(frozen=True, slots=True)
class CapacityAssessment:
    list_size: int
    capacity: Capacity
    hard_cap: int | None

    @property
    def above_capacity(self) -> bool:
        return self.list_size > self.capacity.patients

    @property
    def above_hard_cap(self) -> bool:
        return self.hard_cap is not None and self.list_size > self.hard_cap

    @property
    def load(self) -> Decimal | None:
        """List size / capacity (1 = full); None when capacity is 0."""
        if self.capacity.patients == 0:
            return None
        return Decimal(self.list_size) / Decimal(self.capacity.patients)


def _times_fte(per_fte: int, fte: Decimal) -> int:
    return int((Decimal(per_fte) * Decimal(fte)).to_integral_value(rounding=ROUND_HALF_UP))


def capacity_for(role: PractitionerRole, policy: PolicyProfile) -> Capacity:
    if role.individual_capacity is not None:
        return Capacity(role.individual_capacity, CapacityBasis.INDIVIDUAL)
    if role.employment_type is EmploymentType.ST_ALLMANMEDICIN:
        return Capacity(_times_fte(policy.f6_st_patients_per_fte, role.fte), CapacityBasis.ST_BENCHMARK)
    return Capacity(
        _times_fte(policy.f6_specialist_patients_per_fte, role.fte), CapacityBasis.SPECIALIST_BENCHMARK
    )


def hard_cap_for(role: PractitionerRole, policy: PolicyProfile) -> int | None:
    if policy.f6_hard_cap_per_fte is None:
        return None
    return _times_fte(policy.f6_hard_cap_per_fte, role.fte)


def assess(list_size: int, role: PractitionerRole, policy: PolicyProfile) -> CapacityAssessment:
    return CapacityAssessment(list_size, capacity_for(role, policy), hard_cap_for(role, policy))
