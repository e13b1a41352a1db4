"""The vocabulary of care gaps: kinds, causes, resolutions, end reasons."""
from __future__ import annotations

from enum import StrEnum


class GapKind(StrEnum):
    """What the patient lacks (the ``kind`` of the care_gap contracts; absent = FLK)."""

    FAST_LAKARKONTAKT = "fast_lakarkontakt"
    FAST_VARDKONTAKT = "fast_vardkontakt"


class GapCause(StrEnum):
    """Why a qualifying patient lacks a real FLK at the listing unit, or (the last two) a fast
    vårdkontakt (recorded at opening)."""

    NEVER_ASSIGNED = "never_assigned"
    """No FLK in this listing episode, and none was lost by relisting."""
    LOCUM_LIST = "locum_list"
    """Only on the unit's fictive locum list ``<VC> Dr X`` (F3)."""
    DOCTOR_LEFT = "doctor_left"
    """The FLK's role ended at the unit (F8)."""
    RELISTED = "relisted"
    """Had a real FLK at the previous unit, which ended when the patient relisted here (F4)."""
    FLK_ENDED = "flk_ended"
    """The FLK assignment ended for another reason (e.g. the patient asked to change)."""
    NO_FAST_VARDKONTAKT = "no_fast_vardkontakt"
    """Fast-vårdkontakt gap: none has been appointed (none known to the notifier)."""
    FAST_VARDKONTAKT_ENDED = "fast_vardkontakt_ended"
    """Fast-vårdkontakt gap: the patient had one and it ended."""


class GapResolution(StrEnum):
    FAST_LAKARKONTAKT_ASSIGNED = "fast_lakarkontakt_assigned"
    RELISTED = "relisted"
    LISTING_ENDED = "listing_ended"
    """The listing ended without a new one (e.g. moved out of the region)."""
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    NO_LONGER_QUALIFIES = "no_longer_qualifies"
    DECLINED = "declined"
    FAST_VARDKONTAKT_APPOINTED = "fast_vardkontakt_appointed"


class FlkEndReason(StrEnum):
    DOCTOR_LEFT = "doctor_left"
    RELISTED = "relisted"
    PATIENT_REQUEST = "patient_request"
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    OTHER = "other"


class ListingEndReason(StrEnum):
    RELISTED = "relisted"
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    UNLISTED = "unlisted"
    """Any other end (moved out of the region's responsibility, administrative)."""
