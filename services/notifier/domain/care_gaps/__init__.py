"""Care-gap detection: the pure rules (no I/O).

A *care gap* (vårdlucka) is a patient with a large care need who is listed at a care unit
(vårdcentral) and has no real fast läkarkontakt (FLK) there (docs/domain.md §6, F3, F7, F8, P1):

* the patient qualifies when the **latest** risk assessment has ``rub >= policy.rub_threshold``
  (RUB 4–5 by default; assessments are versioned by ``computed_at``, a late older one never
  overrides a newer one) **or** the patient lives in a SÄBO (``policy.include_sabo``) and is in
  G3's population: gets their main health care there, or that was not recorded (a resident
  recorded as getting it elsewhere qualifies only by RUB, unless
  ``policy.include_sabo_main_care_elsewhere``);
* the patient lacks an FLK when no active, non-fictive FLK assignment exists at the listing unit:
  none was ever assigned, only the unit's fictive locum list ``<VC> Dr X`` (F3), or the FLK
  ended (the doctor left, F8, or another reason);
* a patient who declined an FLK (F7) is not a gap when the region's profile says a decline
  suppresses alerts (the listing service decides it and the decline event carries it);
* dead or emigrated persons never have gaps (P1);
* a gap opens only once ``policy.grace_days`` have passed since the listing started.

A second kind of gap, the **fast-vårdkontakt gap** (:attr:`GapKind.FAST_VARDKONTAKT`), exists in
regions whose profile requires a fast vårdkontakt for high-need patients (Kalmar, seed 004:
"Vårdenheten ska säkerställa att patienter med ett stort vårdbehov identifierat med hjälp av RUB
har en fast läkarkontakt ... [och] en fast vårdkontakt"): a listed patient whose latest RUB is in
``policy.fast_vardkontakt_rub_bands`` (empty: the region does not require one) and who has no
open fast vårdkontakt (at any unit, as the listing register counts it). SÄBO residence and a
declined FLK do not matter to it. The same grace period, the same resolutions (relisted, listing
ended, deceased, emigrated, no longer qualifies) and ``fast_vardkontakt_appointed``. The two
kinds are independent: a patient may have one open gap of each kind (one per patient, unit and
kind); their ids differ by kind.

The state of one patient is a frozen :class:`PatientCareState`; facts from the event streams
are applied with :func:`apply`, which returns the new state and the :class:`CareGapOpened` /
:class:`CareGapResolved` events. Time is always explicit (``now``); the service sends a
:class:`Tick` at :func:`next_wakeup` so gaps open when a grace period ends.

Timing choices (documented in the README):

* ``opened_at`` is the moment the gap *condition* became true, never before the end of the
  grace period: ``max(listing start + grace, lacking-FLK since, qualifying since)``, clamped
  to ``now`` (it is never in the future). The gap is *emitted* by the first fact or tick
  processed at or after that moment. Its age (and escalation) counts from ``opened_at``.
* ``resolved_at`` is the effective time of the fact that closed it, clamped to
  ``[opened_at, now]``.
* Gap ids are ``uuid5(patient_key, unit_id, listing_id, opened_at)``: a replay of the same
  facts gives the same ids, and a second gap in the same listing episode gets another id.
"""

from __future__ import annotations

from .events import CareGapOpened, CareGapResolved, GapEvent
from .facts import (
    Fact,
    FlkAssignedFact,
    FlkDeclinedFact,
    FlkEndedFact,
    FvkAppointedFact,
    FvkEndedFact,
    ListingEndedFact,
    ListingStartedFact,
    PersonStatusFact,
    ResidenceFact,
    RiskAssessedFact,
    Tick,
)
from .policy import CarePolicy
from .rules import apply, next_wakeup, tick
from .state import (
    CARE_GAP_NAMESPACE,
    Decline,
    FlkAssignment,
    FlkEnd,
    FvkAppointment,
    Listing,
    ListingEnd,
    OpenGap,
    PatientCareState,
    PersonStatus,
    RiskAssessment,
    SaboPeriod,
    care_gap_id,
    initial_state,
)
from .vocabulary import FlkEndReason, GapCause, GapKind, GapResolution, ListingEndReason

__all__ = [
    "CARE_GAP_NAMESPACE",
    "CarePolicy",
    "CareGapOpened",
    "CareGapResolved",
    "Decline",
    "Fact",
    "FlkAssignedFact",
    "FlkAssignment",
    "FlkDeclinedFact",
    "FlkEnd",
    "FlkEndReason",
    "FlkEndedFact",
    "FvkAppointedFact",
    "FvkAppointment",
    "FvkEndedFact",
    "GapCause",
    "GapEvent",
    "GapKind",
    "GapResolution",
    "Listing",
    "ListingEnd",
    "ListingEndReason",
    "ListingEndedFact",
    "ListingStartedFact",
    "OpenGap",
    "PatientCareState",
    "PersonStatus",
    "PersonStatusFact",
    "ResidenceFact",
    "RiskAssessedFact",
    "RiskAssessment",
    "SaboPeriod",
    "Tick",
    "apply",
    "care_gap_id",
    "initial_state",
    "next_wakeup",
    "tick",
]
