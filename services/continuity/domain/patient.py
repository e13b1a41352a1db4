"""Per-patient continuity state and the pure functions that evolve it.

The stream worker and the batch CLI both use exactly these functions, so they
agree on the same input::

    state = record_visit(state, visit, as_of, settings)
    state = cancel_visit(state, visit_id, as_of, settings)
    state = set_listing(state, care_unit_id, fast_lakarkontakt)
    state = advance(state, as_of, settings)          # prune as time passes
    indices = compute_indices(state, as_of, settings)

Rules:

* Idempotent on visit id: a visit id already recorded or cancelled changes
  nothing (the first version wins).  Ids are kept as 64-bit blake2b digests.
* A cancellation removes the visit; it leaves a tombstone so that a redelivered
  visit, or a visit arriving *after* its cancellation, is ignored.
* Visits are kept in time order whatever order they arrive in.  The order key
  is (occurred_at to the second, arrival sequence); a date without a time sorts
  at 00:00 of that day.  Aware date-times are taken in Swedish local time.
* State is bounded by the window: visits and tombstones whose date is at or
  before the window start are pruned (and never accepted), so *as of* must not
  go backwards for a patient.  A tombstone for a visit not yet seen is dated
  with the cancellation's ``occurred_at`` if given, otherwise with *as of*.
* Visits that can never count under the settings (a profession in neither set,
  an uncounted contact type) are not stored.

Every function returns the *same object* when nothing changed, so a caller can
skip writing unchanged state (``if new is not state``).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from hashlib import blake2b
from typing import NamedTuple
from zoneinfo import ZoneInfo

from .indices import IndexSet, index_set
from .settings import ContinuitySettings, Scope, normalise_code
from .window import window_bounds

__all__ = [
    "Visit",
    "StoredVisit",
    "Tombstone",
    "PatientState",
    "PatientIndices",
    "EMPTY_STATE",
    "COUNTS_FOR_DOCTOR",
    "COUNTS_FOR_TOTAL",
    "LOCAL_TIME_ZONE",
    "visit_digest",
    "visit_stamp",
    "record_visit",
    "cancel_visit",
    "set_listing",
    "advance",
    "compute_indices",
]

#: Time zone in which aware date-times are turned into calendar dates.
LOCAL_TIME_ZONE = "Europe/Stockholm"
SECONDS_PER_DAY = 86_400
#: Bit flags in :attr:`StoredVisit.counts_for`.
COUNTS_FOR_DOCTOR = 1
COUNTS_FOR_TOTAL = 2


class Visit(NamedTuple):
    """A visit (contact) as it arrives.

    ``seq`` is the arrival sequence (a Kafka offset, a file line number); it
    orders visits with the same time.  ``None`` means "after every visit
    already recorded for this patient".  Use one convention per patient.
    ``contact_type`` ``None`` (unknown) always counts.
    """

    visit_id: str
    practitioner_id: str
    profession: str
    care_unit_id: str
    occurred_at: date | datetime
    seq: int | None = None
    contact_type: str | None = None


class StoredVisit(NamedTuple):
    """A visit as kept in state; tuples order by (stamp, seq)."""

    stamp: int  #: seconds: date ordinal × 86 400 + second of the (local) day
    seq: int  #: arrival sequence
    digest: int  #: 64-bit digest of the visit id
    practitioner_id: str
    care_unit_id: str
    counts_for: int  #: COUNTS_FOR_DOCTOR | COUNTS_FOR_TOTAL

    @property
    def day(self) -> date:
        """The visit's calendar date."""
        return date.fromordinal(self.stamp // SECONDS_PER_DAY)


class Tombstone(NamedTuple):
    """A cancelled visit id, kept until its date leaves the window."""

    digest: int
    day_number: int  #: date ordinal of the cancelled visit (or of the cancellation)


@dataclass(frozen=True, slots=True)
class PatientState:
    """Everything needed to compute one patient's indices; compact and immutable."""

    listing_unit_id: str | None = None
    fast_lakarkontakt: tuple[str, ...] = ()  #: sorted, unique practitioner ids
    visits: tuple[StoredVisit, ...] = ()  #: in (stamp, seq) order
    tombstones: tuple[Tombstone, ...] = ()

    @property
    def listed(self) -> bool:
        """Whether the patient is listed at a care unit."""
        return self.listing_unit_id is not None


EMPTY_STATE = PatientState()


class PatientIndices(NamedTuple):
    """A patient's indices as of a date: doctor contacts and total contacts."""

    as_of: date
    doctor: IndexSet
    total: IndexSet

    def to_json_dict(self) -> dict[str, object]:
        """``{"as_of": "YYYY-MM-DD", "doctor": {...}, "total": {...}}``."""
        return {
            "as_of": self.as_of.isoformat(),
            "doctor": self.doctor._asdict(),
            "total": self.total._asdict(),
        }


# --------------------------------------------------------------------------- helpers


def visit_digest(visit_id: str) -> int:
    """The 64-bit blake2b digest under which a visit id is deduplicated."""
    return int.from_bytes(blake2b(visit_id.encode(), digest_size=8).digest(), "little")


@lru_cache(maxsize=1)
def _local_zone() -> ZoneInfo:
    return ZoneInfo(LOCAL_TIME_ZONE)


def visit_stamp(occurred_at: date | datetime) -> int:
    """The order key in seconds: date ordinal × 86 400 + second of the local day."""
    if isinstance(occurred_at, datetime):
        if occurred_at.tzinfo is not None:
            occurred_at = occurred_at.astimezone(_local_zone())
        return (
            occurred_at.toordinal() * SECONDS_PER_DAY
            + occurred_at.hour * 3600
            + occurred_at.minute * 60
            + occurred_at.second
        )
    return occurred_at.toordinal() * SECONDS_PER_DAY


@lru_cache(maxsize=256)
def _bounds(as_of: date, window_months: int) -> tuple[int, int]:
    return window_bounds(as_of, window_months)


def counts_for(profession: str, settings: ContinuitySettings) -> int:
    """Which index a visit by this profession counts for: doctor and/or total (flag bits)."""
    code = normalise_code(profession)
    flags = COUNTS_FOR_DOCTOR if code in settings.doctor_professions else 0
    total = settings.total_professions
    if total is None or code in total:
        flags |= COUNTS_FOR_TOTAL
    return flags


def _prune(
    visits: tuple[StoredVisit, ...], tombstones: tuple[Tombstone, ...], lo: int
) -> tuple[tuple[StoredVisit, ...], tuple[Tombstone, ...]]:
    """Drop visits and tombstones dated on or before ordinal ``lo``."""
    if lo:
        lo_stamp = (lo + 1) * SECONDS_PER_DAY
        if visits and visits[0][0] < lo_stamp:
            visits = visits[bisect_left(visits, (lo_stamp,)) :]
        if tombstones:
            for t in tombstones:
                if t[1] <= lo:
                    tombstones = tuple(t for t in tombstones if t[1] > lo)
                    break
    return visits, tombstones


# --------------------------------------------------------------------------- evolve


def record_visit(
    state: PatientState, visit: Visit, as_of: date, settings: ContinuitySettings
) -> PatientState:
    """State with ``visit`` placed in time order (or ``state`` itself if ignored).

    Ignored: a known or cancelled visit id, a visit dated at or before the
    window start, a visit that can never count under ``settings``.
    """
    flags = counts_for(visit.profession, settings)
    if not flags:
        return state
    contact_type = visit.contact_type
    if contact_type and normalise_code(contact_type) not in settings.contact_types:
        return state
    stamp = visit_stamp(visit.occurred_at)
    lo, _ = _bounds(as_of, settings.window_months)
    if stamp // SECONDS_PER_DAY <= lo:
        return state
    digest = visit_digest(visit.visit_id)
    for t in state.tombstones:
        if t[0] == digest:
            return state
    visits = state.visits
    for v in visits:
        if v[2] == digest:
            return state
    seq = visit.seq
    if seq is None:
        seq = max(v[1] for v in visits) + 1 if visits else 0
    visits, tombstones = _prune(visits, state.tombstones, lo)
    new = StoredVisit(stamp, seq, digest, visit.practitioner_id, visit.care_unit_id, flags)
    if not visits or visits[-1] <= new:
        visits = visits + (new,)
    else:
        i = bisect_right(visits, new)
        visits = visits[:i] + (new,) + visits[i:]
    return PatientState(state.listing_unit_id, state.fast_lakarkontakt, visits, tombstones)


def cancel_visit(
    state: PatientState,
    visit_id: str,
    as_of: date,
    settings: ContinuitySettings,
    occurred_at: date | datetime | None = None,
) -> PatientState:
    """State without visit ``visit_id``, remembering the cancellation.

    ``occurred_at`` (the cancelled visit's time, if the cancellation carries
    it) dates the tombstone of a visit not seen yet; otherwise ``as_of`` does.
    """
    digest = visit_digest(visit_id)
    for t in state.tombstones:
        if t[0] == digest:
            return state
    lo, _ = _bounds(as_of, settings.window_months)
    visits = state.visits
    for i, v in enumerate(visits):
        if v[2] == digest:
            day = v[0] // SECONDS_PER_DAY
            visits = visits[:i] + visits[i + 1 :]
            break
    else:
        if occurred_at is None:
            day = as_of.toordinal()
        else:
            day = visit_stamp(occurred_at) // SECONDS_PER_DAY
        if day <= lo:  # such a visit would be ignored anyway
            return state
    visits, tombstones = _prune(visits, state.tombstones, lo)
    if day > lo:
        tombstones = tombstones + (Tombstone(digest, day),)
    return PatientState(state.listing_unit_id, state.fast_lakarkontakt, visits, tombstones)


def set_listing(
    state: PatientState, care_unit_id: str | None, fast_lakarkontakt: Iterable[str] = ()
) -> PatientState:
    """State with the patient listed at ``care_unit_id`` (None: not listed) and these FLKs."""
    flk = tuple(sorted({f for f in fast_lakarkontakt if f}))
    if care_unit_id == state.listing_unit_id and flk == state.fast_lakarkontakt:
        return state
    return PatientState(care_unit_id, flk, state.visits, state.tombstones)


def advance(state: PatientState, as_of: date, settings: ContinuitySettings) -> PatientState:
    """State with visits and tombstones that left the window ending at ``as_of`` pruned."""
    lo, _ = _bounds(as_of, settings.window_months)
    visits, tombstones = _prune(state.visits, state.tombstones, lo)
    if visits is state.visits and tombstones is state.tombstones:
        return state
    return PatientState(state.listing_unit_id, state.fast_lakarkontakt, visits, tombstones)


# --------------------------------------------------------------------------- read


def compute_indices(
    state: PatientState, as_of: date, settings: ContinuitySettings, main_unit: Mapping[str, str] | None = None
) -> PatientIndices:
    """The doctor and total indices over the visits counted as of ``as_of``.

    Counted: visits in the window (``start < date <= as_of``); with scope
    ``listing-unit`` and a listing, only visits at the listing unit — where ``main_unit`` maps a
    filial to its main unit (the unit register, seed 004), at the listing unit's main unit or any of
    its filials.
    """
    lo, hi = _bounds(as_of, settings.window_months)
    visits = state.visits
    lo_stamp = (lo + 1) * SECONDS_PER_DAY
    hi_stamp = (hi + 1) * SECONDS_PER_DAY
    start = bisect_left(visits, (lo_stamp,)) if visits and visits[0][0] < lo_stamp else 0
    end = len(visits) if not visits or visits[-1][0] < hi_stamp else bisect_left(visits, (hi_stamp,))
    unit = state.listing_unit_id if settings.scope is Scope.LISTING_UNIT else None
    families = main_unit or None
    if unit is not None and families is not None:
        unit = families.get(unit, unit)
    doctor: list[str] = []
    total: list[str] = []
    for i in range(start, end):
        _, _, _, practitioner, care_unit, flags = visits[i]
        if unit is not None and care_unit != unit and (families is None or families.get(care_unit) != unit):
            continue
        if flags & COUNTS_FOR_DOCTOR:
            doctor.append(practitioner)
        if flags & COUNTS_FOR_TOTAL:
            total.append(practitioner)
    flk = state.fast_lakarkontakt
    min_visits = settings.min_visits
    return PatientIndices(as_of, index_set(doctor, flk, min_visits), index_set(total, flk, min_visits))
