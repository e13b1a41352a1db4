"""Pure: unit, doctor and region aggregates of the patients' continuity (SKR definition).

Eligible (SKR): listed, with at least ``min_visits`` counted visits in the window, counting
only visits at the listing unit (the domain's scope setting). Aggregation (the sources leave
it open; project default): mean COC over eligible patients with a defined COC, plus the
distribution in ten fixed buckets [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0], and the sample standard
deviation, from which the figure's 95 % interval is computed (``domain/uncertainty.py``). The SÄBO
residents who get their main health care there (cohort 'sabo', G4's population as G3's: a resident whose
qualifier was not recorded is in it, one recorded as getting it elsewhere is not; see
``record.PatientRecord.sabo_cohort_on``) and the patients whose current RUB band is 4 or 5 (cohort 'rub45': chronic and
complex patients) are aggregated separately as well; cohort 'all' includes both, and a patient can be in
both.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

BUCKETS = 10


class Summary(NamedTuple):
    """What aggregation needs of one patient (kept in memory, no visit data)."""

    unit: str | None
    doctor: str | None
    sabo: bool  # in the 'sabo' cohort (lives in SÄBO, main care there or not recorded)
    doctor_eligible: bool
    doctor_coc: float | None
    total_eligible: bool
    total_coc: float | None
    rub45: bool = False  # current RUB band 4 or 5


@dataclass
class _Acc:
    listed: int = 0
    doctor_n: int = 0
    doctor_sum: float = 0.0
    doctor_sumsq: float = 0.0
    total_n: int = 0
    total_sum: float = 0.0
    total_sumsq: float = 0.0
    doctor_buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    total_buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, s: Summary) -> None:
        self.listed += 1
        if s.doctor_eligible and s.doctor_coc is not None:
            self.doctor_n += 1
            self.doctor_sum += s.doctor_coc
            self.doctor_sumsq += s.doctor_coc * s.doctor_coc
            self.doctor_buckets[min(int(s.doctor_coc * BUCKETS), BUCKETS - 1)] += 1
        if s.total_eligible and s.total_coc is not None:
            self.total_n += 1
            self.total_sum += s.total_coc
            self.total_sumsq += s.total_coc * s.total_coc
            self.total_buckets[min(int(s.total_coc * BUCKETS), BUCKETS - 1)] += 1


class AggregateRow(NamedTuple):
    level: str  # 'region' | 'unit' | 'doctor'
    entity_id: str  # region code, unit HSA-id, doctor HSA-id
    care_unit_id: str  # '' for the region
    cohort: str  # 'all' | 'sabo' | 'rub45'
    listed_patients: int
    eligible_doctor: int
    mean_coc_doctor: float | None
    eligible_total: int
    mean_coc_total: float | None
    coc_doctor_buckets: tuple[int, ...]
    coc_total_buckets: tuple[int, ...]
    sd_coc_doctor: float | None = None  # sample SD over the eligible patients (None for fewer than 2)
    sd_coc_total: float | None = None

    def to_json_dict(self) -> dict[str, object]:
        d = self._asdict()
        d["coc_doctor_buckets"] = list(self.coc_doctor_buckets)
        d["coc_total_buckets"] = list(self.coc_total_buckets)
        return d


def _sd(n: int, total: float, sumsq: float) -> float | None:
    """Sample SD from the sum and the sum of squares (values in [0, 1]: no cancellation to fear)."""
    if n < 2:
        return None
    return math.sqrt(max(sumsq - total * total / n, 0.0) / (n - 1))


class PatientRow(NamedTuple):
    """One eligible patient's values on a snapshot date (for the same-patients comparison)."""

    patient_key: str
    care_unit_id: str
    doctor_id: str | None
    sabo: bool
    coc_doctor: float | None
    coc_total: float | None
    rub45: bool = False


def patient_rows(summaries: Iterable[tuple[bytes, Summary]]) -> list[PatientRow]:
    """The listed patients with at least one defined, eligible COC value."""
    rows = []
    for key, s in summaries:
        if s.unit is None:
            continue
        doctor = s.doctor_coc if s.doctor_eligible else None
        total = s.total_coc if s.total_eligible else None
        if doctor is not None or total is not None:
            rows.append(PatientRow(key.decode(), s.unit, s.doctor, s.sabo, doctor, total, s.rub45))
    return rows


def aggregate(summaries: Iterable[Summary], region_id: str) -> list[AggregateRow]:
    """Rows for the region, every unit and every doctor (FLK), cohorts 'all', 'sabo' and 'rub45' (a cohort's
    row only where it has a patient; the region's 'all' row always)."""
    accs: dict[tuple[str, str, str, str], _Acc] = {}

    def acc(key: tuple[str, str, str, str]) -> _Acc:
        a = accs.get(key)
        if a is None:
            a = accs[key] = _Acc()
        return a

    for s in summaries:
        if s.unit is None:
            continue
        cohorts = ("all", *(("sabo",) if s.sabo else ()), *(("rub45",) if s.rub45 else ()))
        for cohort in cohorts:
            acc(("region", region_id, "", cohort)).add(s)
            acc(("unit", s.unit, s.unit, cohort)).add(s)
            if s.doctor is not None:
                acc(("doctor", s.doctor, s.unit, cohort)).add(s)
    if ("region", region_id, "", "all") not in accs:
        accs[("region", region_id, "", "all")] = _Acc()
    return [
        AggregateRow(
            level, entity, unit, cohort, a.listed,
            a.doctor_n, a.doctor_sum / a.doctor_n if a.doctor_n else None,
            a.total_n, a.total_sum / a.total_n if a.total_n else None,
            tuple(a.doctor_buckets), tuple(a.total_buckets),
            _sd(a.doctor_n, a.doctor_sum, a.doctor_sumsq), _sd(a.total_n, a.total_sum, a.total_sumsq),
        )
        for (level, entity, unit, cohort), a in sorted(accs.items())
    ]
