"""Events: what happened (past tense). Ids, codes, dates and numbers only (P2, see privacy.py).

Rejections are events too: they carry a :class:`RejectionReason` (rule id + sv/en message)
and the policy version that decided (``decided_under`` = ``"name@version"``).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from .model import (
    Channel,
    ConsentOutcome,
    ExemptionReason,
    FastVardkontaktEndReason,
    FlkEndReason,
    Initiator,
    ListingEndReason,
    ListingOrigin,
    ListKind,
)
from .privacy import ids_only
from .reasons import RejectionReason, RuleId

# ---------------------------------------------------------------- listing (L1–L7)


@ids_only
class ListingStarted:
    """The person was listed. ``responsibility_from`` = registration + the L6 offset.

    ``previous_care_unit_id`` is set when this listing is a change of unit (L5 history).
    """

    patient_key: str
    care_unit_id: str
    started_on: date  # registration date
    responsibility_from: date
    origin: ListingOrigin
    channel: Channel
    initiated_by: Initiator
    exemption_reason: ExemptionReason | None = None
    previous_care_unit_id: str | None = None
    counts_toward_switch_limit: bool = False


@ids_only
class ListingEnded:
    """``ended_on`` is the first day the unit is no longer responsible (half-open period end)."""

    patient_key: str
    care_unit_id: str
    ended_on: date
    reason: ListingEndReason


@ids_only
class ListingAwaitingConsent:
    """P3: a guardian asked to list the child; the request waits for ``awaiting_guardian_keys``.

    Announced when the request is made and again (same ``requested_on``) when a consent leaves
    someone still awaited (only when the register's guardianship changed meanwhile). ``expires_on``:
    the first day it can no longer be consented to. The request's own fields are kept so the
    ordinary listing decision can run on the consent's date.
    """

    patient_key: str
    care_unit_id: str
    requested_on: date
    expires_on: date
    consented_guardian_keys: frozenset[str]
    awaiting_guardian_keys: frozenset[str]
    origin: ListingOrigin
    channel: Channel
    initiated_by: Initiator
    exemption_reason: ExemptionReason | None = None
    residency_exception: str | None = None


@ids_only
class ListingConsentClosed:
    """P3: the child's pending listing request ended (``outcome``); ``closed_on`` is the first day it is
    no longer pending (for an expiry: its ``expires_on``)."""

    patient_key: str
    care_unit_id: str
    requested_on: date
    closed_on: date
    outcome: ConsentOutcome


# ---------------------------------------------------------------- fast läkarkontakt (F1–F8)


@ids_only
class FastLakarkontaktAssigned:
    """The person was put on a list. ``list_kind == fictive`` is not a named FLK (F3)."""

    patient_key: str
    list_id: str
    care_unit_id: str
    list_kind: ListKind
    practitioner_id: str | None
    coordinating: bool
    assigned_on: date


@ids_only
class FastLakarkontaktEnded:
    patient_key: str
    list_id: str
    care_unit_id: str
    list_kind: ListKind
    practitioner_id: str | None
    coordinating: bool  # whether it was the coordinating FLK when it ended
    ended_on: date
    reason: FlkEndReason


@ids_only
class CoordinatingFastLakarkontaktChanged:
    """F5: the coordinating (sammanhållande) FLK is now ``list_id`` (at ``care_unit_id``, the
    doctor ``practitioner_id``; None for a fictive list)."""

    patient_key: str
    list_id: str
    previous_list_id: str | None
    effective_date: date
    care_unit_id: str = ""
    practitioner_id: str | None = None


@ids_only
class FastLakarkontaktDeclined:
    """F7: the patient declined an FLK at their listing unit. ``suppresses_alerts``: whether, under the
    region's profile, the decline stops care-gap alerts for the patient (the notifier follows it)."""

    patient_key: str
    care_unit_id: str
    declined_on: date
    suppresses_alerts: bool = True


class CapacityBasis(StrEnum):
    INDIVIDUAL = "individual"  # individually agreed list size on the role
    SPECIALIST_BENCHMARK = "specialist_benchmark"  # 1 100 × FTE
    ST_BENCHMARK = "st_benchmark"  # 550 × FTE


@ids_only
class CapacityWarning:
    """F6: a list is above its capacity after an accepted assignment (never a block on the national figure)."""

    list_id: str
    care_unit_id: str
    practitioner_id: str
    list_size: int
    capacity: int
    basis: CapacityBasis
    effective_date: date
    decided_under: str

    @property
    def rule_id(self) -> RuleId:
        return RuleId.F6


@ids_only
class PractitionerRoleEnded:
    """F8: the doctor's role ended; the lists stay."""

    role_id: str
    practitioner_id: str
    care_unit_id: str
    ended_on: date


# ---------------------------------------------------------------- fast vårdkontakt (V1)


@ids_only
class FastVardkontaktRequested:
    """V1: a task for the verksamhetschef."""

    patient_key: str
    care_unit_id: str
    effective_date: date


@ids_only
class FastVardkontaktAppointed:
    patient_key: str
    care_unit_id: str
    practitioner_id: str
    profession: str
    appointed_by_hsa_id: str
    appointed_on: date


@ids_only
class FastVardkontaktEnded:
    patient_key: str
    care_unit_id: str
    practitioner_id: str
    ended_on: date
    reason: FastVardkontaktEndReason


# ---------------------------------------------------------------- person (P1–P3, SÄBO)


@ids_only
class PersonDeceased:
    patient_key: str
    effective_date: date


@ids_only
class PersonEmigrated:
    patient_key: str
    effective_date: date


@ids_only
class PersonMovedOutOfRegion:
    patient_key: str
    effective_date: date


@ids_only
class ProtectedIdentityRecorded:
    patient_key: str
    protected: bool
    effective_date: date


@ids_only
class SaboResidenceRecorded:
    patient_key: str
    resident: bool
    effective_date: date


# ---------------------------------------------------------------- rejections


class _Rejection:
    """Mixin: the rule id and messages of a rejection, read from its reason."""

    __slots__ = ()
    reason: RejectionReason

    @property
    def rule_id(self) -> RuleId:
        return self.reason.rule_id

    @property
    def message_sv(self) -> str:
        return self.reason.message_sv

    @property
    def message_en(self) -> str:
        return self.reason.message_en


@ids_only
class ListingRejected(_Rejection):
    patient_key: str
    care_unit_id: str | None
    effective_date: date
    reason: RejectionReason
    decided_under: str


@ids_only
class AssignmentRejected(_Rejection):
    """An FLK, decline or fast vårdkontakt command was rejected."""

    patient_key: str
    list_id: str | None
    effective_date: date
    reason: RejectionReason
    decided_under: str


@ids_only
class RecordRejected(_Rejection):
    """A register command (role ended, death, protected identity, ...) could not be applied."""

    subject_id: str
    effective_date: date
    reason: RejectionReason
    decided_under: str


Event = (
    ListingStarted
    | ListingEnded
    | ListingAwaitingConsent
    | ListingConsentClosed
    | FastLakarkontaktAssigned
    | FastLakarkontaktEnded
    | CoordinatingFastLakarkontaktChanged
    | FastLakarkontaktDeclined
    | CapacityWarning
    | PractitionerRoleEnded
    | FastVardkontaktRequested
    | FastVardkontaktAppointed
    | FastVardkontaktEnded
    | PersonDeceased
    | PersonEmigrated
    | PersonMovedOutOfRegion
    | ProtectedIdentityRecorded
    | SaboResidenceRecorded
    | ListingRejected
    | AssignmentRejected
    | RecordRejected
)

ALL_EVENTS: tuple[type, ...] = Event.__args__  # type: ignore[attr-defined]
REJECTIONS: tuple[type, ...] = (ListingRejected, AssignmentRejected, RecordRejected)
