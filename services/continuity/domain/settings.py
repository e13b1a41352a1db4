"""Settings of the continuity measure (what counts, over which window).

The sources (SKR Primärvårdskvalitet "Kontinuitet") fix the default follow-up
measure: listed patients, at least 3 visits in the last 18 months, only visits at
the listing unit.  What the sources leave open (professions in "total contacts",
contact types) is a setting with a documented default, never a code branch.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

__all__ = ["Scope", "ContinuitySettings", "normalise_code", "DEFAULT_CONTACT_TYPES"]

#: Contact types counted by default: visit, phone, digital, home visit.
DEFAULT_CONTACT_TYPES: frozenset[str] = frozenset({"besok", "telefon", "digital", "hembesok"})


class Scope(StrEnum):
    """Which care units' visits count for a patient."""

    #: Only visits at the unit where the patient is listed (SKR). A patient
    #: without a listing then counts visits at all units.
    LISTING_UNIT = "listing-unit"
    #: Visits at every unit count.
    ALL = "all"


@lru_cache(maxsize=1024)
def normalise_code(value: str) -> str:
    """Canonical form of a code such as a profession or contact type.

    NFC (so a decomposed "a" + diaeresis equals "ä"), trimmed, case-folded.
    Cached: the hot path sees a handful of distinct values.
    """
    return unicodedata.normalize("NFC", value).strip().casefold()


@dataclass(frozen=True, slots=True)
class ContinuitySettings:
    """How continuity is measured.

    ``window_months=0`` means no window (every visit up to *as of* counts).
    ``total_professions=None`` means all professions count for the total index.
    ``contact_types`` are the counted contact types; a visit without a contact
    type always counts (the source did not say).

    The per-patient state depends on the profession and contact-type settings
    (visits that can never count are not stored) and on the window (older
    visits are pruned): after changing them, rebuild state from the visits.
    """

    window_months: int = 18
    min_visits: int = 3
    scope: Scope = Scope.LISTING_UNIT
    doctor_professions: frozenset[str] = frozenset({"läkare"})
    total_professions: frozenset[str] | None = None
    contact_types: frozenset[str] = field(default=DEFAULT_CONTACT_TYPES)

    def __post_init__(self) -> None:
        if self.window_months < 0:
            raise ValueError(f"window_months must be >= 0, got {self.window_months}")
        if self.min_visits < 0:
            raise ValueError(f"min_visits must be >= 0, got {self.min_visits}")
        object.__setattr__(self, "scope", Scope(self.scope))
        object.__setattr__(
            self, "doctor_professions", frozenset(normalise_code(p) for p in self.doctor_professions)
        )
        if self.total_professions is not None:
            object.__setattr__(
                self, "total_professions", frozenset(normalise_code(p) for p in self.total_professions)
            )
        object.__setattr__(
            self, "contact_types", frozenset(normalise_code(c) for c in self.contact_types)
        )
