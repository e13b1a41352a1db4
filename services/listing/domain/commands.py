"""Commands: what someone asks the listing domain to do (imperative). Ids only (P2).

Every command has an ``effective_date``; :func:`decide` uses the policy version valid on it.
"""

from __future__ import annotations

from datetime import date

from .model import (
    Channel,
    ExemptionReason,
    FastVardkontaktEndReason,
    FlkEndReason,
    GuardianDecision,
    Initiator,
    ListingEndReason,
    ListingOrigin,
)
from .privacy import ids_only


@ids_only
class RequestListing:
    """List a person at a unit (L1–L7, P1, P3).

    ``residency_exception`` names an L4 exception group the person belongs to, if any.
    For a minor, ``consenting_guardian_keys`` are the guardians who consented (the requesting
    guardian). Who the guardians are, and how many, comes from the population register
    (``Person.guardian_keys``); ``guardian_count`` — what the caller declares — is only read when
    the register has no guardianship fact for the child (v1 compatibility).
    """

    patient_key: str
    care_unit_id: str
    effective_date: date
    initiated_by: Initiator = Initiator.PERSON
    channel: Channel = Channel.PORTAL_1177
    origin: ListingOrigin = ListingOrigin.ACTIVE_CHOICE
    exemption_reason: ExemptionReason | None = None
    residency_exception: str | None = None
    consenting_guardian_keys: frozenset[str] = frozenset()
    guardian_count: int | None = None


@ids_only
class AnswerListingConsent:
    """P3: a guardian consents to (or refuses) the child's pending listing request at ``care_unit_id``."""

    patient_key: str  # the child
    care_unit_id: str
    guardian_key: str  # who answers (must be a guardian of the child in the population register)
    effective_date: date
    decision: GuardianDecision = GuardianDecision.CONSENT


@ids_only
class ExpireListingConsent:
    """P3: the periodic sweep — end the child's pending listing request if its wait is over."""

    patient_key: str
    effective_date: date


@ids_only
class EndListing:
    """End the person's listing without a new one."""

    patient_key: str
    effective_date: date
    reason: ListingEndReason = ListingEndReason.ENDED_BY_PATIENT


@ids_only
class AssignFastLakarkontakt:
    """Put the person on a list: a named FLK, or a fictive list (F3).

    ``replaces_list_id``: end that assignment (reason ``replaced``) in the same decision.
    ``practitioner_id``: the person the caller named when no list was named; when no list is found
    for them, their roles decide the reason (F1 for someone who is not a licensed doctor, else F4).
    """

    patient_key: str
    list_id: str
    effective_date: date
    coordinating: bool = False
    replaces_list_id: str | None = None
    practitioner_id: str | None = None


@ids_only
class EndFastLakarkontakt:
    patient_key: str
    list_id: str
    effective_date: date
    reason: FlkEndReason = FlkEndReason.ENDED_BY_PATIENT
    new_coordinating_list_id: str | None = None


@ids_only
class DeclineFastLakarkontakt:
    """F7: the patient does not want an FLK at their listing unit (stays listed)."""

    patient_key: str
    effective_date: date


@ids_only
class RequestFastVardkontakt:
    """V1: the patient asks for a fast vårdkontakt — creates a task for the verksamhetschef."""

    patient_key: str
    care_unit_id: str
    effective_date: date


@ids_only
class AppointFastVardkontakt:
    """V1: the verksamhetschef appoints a fast vårdkontakt (any profession)."""

    patient_key: str
    care_unit_id: str
    practitioner_id: str
    profession: str
    appointed_by_hsa_id: str
    effective_date: date


@ids_only
class EndFastVardkontakt:
    patient_key: str
    care_unit_id: str
    practitioner_id: str
    effective_date: date
    reason: FastVardkontaktEndReason = FastVardkontaktEndReason.ENDED_BY_PATIENT


@ids_only
class RecordPractitionerRoleEnded:
    """F8: a doctor's role at a unit ended (from HSA or HR)."""

    role_id: str
    effective_date: date


@ids_only
class RecordPersonDeceased:
    """P1: from the population register."""

    patient_key: str
    effective_date: date


@ids_only
class RecordPersonEmigrated:
    """P1: from the population register."""

    patient_key: str
    effective_date: date


@ids_only
class RecordPersonMovedOutOfRegion:
    """The person is now folkbokförd in another region (population register)."""

    patient_key: str
    effective_date: date


@ids_only
class RecordProtectedIdentity:
    """P2: skyddad folkbokföring / sekretessmarkering set (or lifted)."""

    patient_key: str
    effective_date: date
    protected: bool = True


@ids_only
class RecordSaboResidence:
    """The EHR flag "Hemsjukvård SÄBO" was set (or lifted) (seed 001)."""

    patient_key: str
    effective_date: date
    resident: bool = True


Command = (
    RequestListing
    | AnswerListingConsent
    | ExpireListingConsent
    | EndListing
    | AssignFastLakarkontakt
    | EndFastLakarkontakt
    | DeclineFastLakarkontakt
    | RequestFastVardkontakt
    | AppointFastVardkontakt
    | EndFastVardkontakt
    | RecordPractitionerRoleEnded
    | RecordPersonDeceased
    | RecordPersonEmigrated
    | RecordPersonMovedOutOfRegion
    | RecordProtectedIdentity
    | RecordSaboResidence
)

ALL_COMMANDS: tuple[type, ...] = Command.__args__  # type: ignore[attr-defined]
