"""What each decided domain event means for the register's rows (the same transitions as
``domain.evolve``: periods are closed, never deleted), and the contract event it publishes, with
the ids the rows got (``listing_id``, ``assignment_id``, ``appointment_id``)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flk.events.envelope import derived_id
from services.listing.domain import events as ev
from services.listing.domain.model import (
    PopulationStatus,
)
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.listing.adapters.repository import ListingRepository

CLOSE_LISTING = """UPDATE listing.listing SET end_on = GREATEST($3, start_on), end_reason = $4
WHERE patient_key = $1 AND care_unit_id = $2 AND end_on IS NULL"""
CLOSE_ASSIGNMENT = """UPDATE listing.flk_assignment SET end_on = GREATEST($3, start_on), end_reason = $4
WHERE patient_key = $1 AND list_id = $2 AND end_on IS NULL"""
CLOSE_DECLINES = """UPDATE listing.flk_decline SET end_on = GREATEST($3, start_on)
WHERE patient_key = $1 AND care_unit_id = $2 AND end_on IS NULL"""
INSERT_LISTING = """INSERT INTO listing.listing (listing_id, patient_key, care_unit_id, registered_on, start_on, origin,
    channel, initiated_by, exemption_reason, command_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"""
INSERT_ASSIGNMENT = """INSERT INTO listing.flk_assignment (assignment_id, patient_key, list_id, care_unit_id, list_kind,
    practitioner_id, coordinating, start_on, command_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"""


@dataclass(frozen=True)
class OutboxEvent:
    """A contract event to publish: its type and data (validated by the relay's make_record)."""

    event_type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class DecisionContext:
    """Who asked: the message the events answer (ids and the contract's command type)."""

    message_id: str
    command_type: str
    decided_at: datetime
    care_unit_id: str | None = None  # the unit the command named (for rejections)

    @property
    def command_uuid(self) -> str:
        """The command id as the contracts want it (a uuid); a non-uuid message id is mapped by uuid5."""
        try:
            return str(uuid.UUID(self.message_id))
        except ValueError:
            return derived_id("listing.message", self.message_id)


def iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def _listing_started(repo: ListingRepository, e: ev.ListingStarted, ctx: DecisionContext, i: int):
    listing_id = derived_id("listing.listing", ctx.message_id, i, e.patient_key, e.care_unit_id)
    await repo.execute(
        INSERT_LISTING,
        listing_id, e.patient_key, e.care_unit_id, e.started_on, e.responsibility_from, e.origin.value,
        e.channel.value, e.initiated_by.value, e.exemption_reason.value if e.exemption_reason else None, ctx.message_id,
    )
    if e.previous_care_unit_id is not None:
        await repo.execute(
            """INSERT INTO listing.listing_change (patient_key, changed_on, from_care_unit_id, to_care_unit_id,
                   initiated_by, origin, exemption_reason, counts_toward_switch_limit, listing_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            e.patient_key, e.started_on, e.previous_care_unit_id, e.care_unit_id, e.initiated_by.value,
            e.origin.value, e.exemption_reason.value if e.exemption_reason else None, e.counts_toward_switch_limit,
            listing_id,
        )
    return OutboxEvent("listing.started.v1", {
        "listing_id": listing_id,
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "started_on": iso(e.started_on),
        "responsibility_from": iso(e.responsibility_from),
        "origin": e.origin.value,
        "channel": e.channel.value,
        "initiated_by": e.initiated_by.value,
        "previous_care_unit_id": e.previous_care_unit_id,
        "command_id": ctx.command_uuid,
    })


async def _listing_ended(repo: ListingRepository, e: ev.ListingEnded, ctx: DecisionContext, i: int):
    listing_id = await repo.close_listing(e.patient_key, e.care_unit_id, e.ended_on, e.reason.value)
    # F7: a decline at the unit ends with the listing (as evolve does)
    await repo.execute(
        CLOSE_DECLINES,
        e.patient_key, e.care_unit_id, e.ended_on,
    )
    if listing_id is None:
        return None
    return OutboxEvent("listing.ended.v1", {
        "listing_id": str(listing_id),
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "ended_on": iso(e.ended_on),
        "reason": e.reason.value,
        "command_id": ctx.command_uuid,
    })


UPSERT_PENDING = """INSERT INTO listing.pending_listing (pending_id, patient_key, care_unit_id, requested_on, expires_on,
    consented_guardian_keys, awaiting_guardian_keys, origin, channel, initiated_by, exemption_reason,
    residency_exception, command_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (patient_key) WHERE closed_on IS NULL DO UPDATE
    SET consented_guardian_keys = EXCLUDED.consented_guardian_keys,
        awaiting_guardian_keys = EXCLUDED.awaiting_guardian_keys"""
CLOSE_PENDING = """UPDATE listing.pending_listing SET closed_on = GREATEST($2, requested_on), outcome = $3
WHERE patient_key = $1 AND closed_on IS NULL"""


async def _awaiting_consent(repo: ListingRepository, e: ev.ListingAwaitingConsent, ctx: DecisionContext, i: int):
    """P3: open the pending request (announced again: the open one's consent sets change)."""
    consented, awaiting = sorted(e.consented_guardian_keys), sorted(e.awaiting_guardian_keys)
    await repo.execute(
        UPSERT_PENDING,
        derived_id("listing.pending_listing", ctx.message_id, i, e.patient_key), e.patient_key, e.care_unit_id,
        e.requested_on, e.expires_on, consented, awaiting, e.origin.value, e.channel.value, e.initiated_by.value,
        e.exemption_reason.value if e.exemption_reason else None, e.residency_exception, ctx.message_id,
    )
    return OutboxEvent("listing.awaiting_consent.v1", {
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "requested_on": iso(e.requested_on),
        "expires_on": iso(e.expires_on),
        "consented_guardian_keys": consented,
        "awaiting_guardian_keys": awaiting,
        "command_id": ctx.command_uuid,
    })


async def _consent_closed(repo: ListingRepository, e: ev.ListingConsentClosed, ctx: DecisionContext, i: int):
    await repo.execute(CLOSE_PENDING, e.patient_key, e.closed_on, e.outcome.value)
    return OutboxEvent("listing.consent_closed.v1", {
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "requested_on": iso(e.requested_on),
        "closed_on": iso(max(e.closed_on, e.requested_on)),
        "outcome": e.outcome.value,
        "command_id": ctx.command_uuid,
    })


async def _flk_assigned(repo: ListingRepository, e: ev.FastLakarkontaktAssigned, ctx: DecisionContext, i: int):
    assignment_id = derived_id("listing.flk_assignment", ctx.message_id, i, e.patient_key, e.list_id)
    await repo.execute(
        INSERT_ASSIGNMENT,
        assignment_id, e.patient_key, e.list_id, e.care_unit_id, e.list_kind.value, e.practitioner_id,
        e.coordinating, e.assigned_on, ctx.message_id,
    )
    await repo.execute(
        CLOSE_DECLINES,
        e.patient_key, e.care_unit_id, e.assigned_on,
    )
    return OutboxEvent("fast_lakarkontakt.assigned.v1", {
        "assignment_id": assignment_id,
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "list_id": e.list_id,
        "list_kind": e.list_kind.value,
        "practitioner_id": e.practitioner_id,
        "coordinating": e.coordinating,
        "assigned_on": iso(e.assigned_on),
        "command_id": ctx.command_uuid,
    })


async def _flk_ended(repo: ListingRepository, e: ev.FastLakarkontaktEnded, ctx: DecisionContext, i: int):
    assignment_id = await repo.close_assignment(e.patient_key, e.list_id, e.ended_on, e.reason.value)
    if assignment_id is None:
        return None
    return OutboxEvent("fast_lakarkontakt.ended.v1", {
        "assignment_id": str(assignment_id),
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "list_id": e.list_id,
        "list_kind": e.list_kind.value,
        "practitioner_id": e.practitioner_id,
        "coordinating": e.coordinating,
        "ended_on": iso(e.ended_on),
        "reason": e.reason.value,
        "command_id": ctx.command_uuid,
    })


async def _coordinating_changed(repo: ListingRepository, e: ev.CoordinatingFastLakarkontaktChanged,
                                ctx: DecisionContext, i: int):
    # in-place flag change: the history trigger keeps the old row. The event carries what it
    # announces, so nothing is read back: in a chunk the assignment it names may still be a planned
    # row (ChunkRepository), and a read would miss it and lose the event.
    await repo.execute(
        "UPDATE listing.flk_assignment SET coordinating = (list_id = $2) "
        "WHERE patient_key = $1 AND end_on IS NULL AND coordinating IS DISTINCT FROM (list_id = $2)",
        e.patient_key, e.list_id,
    )
    return OutboxEvent("fast_lakarkontakt.coordinating_changed.v1", {
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "list_id": e.list_id,
        "practitioner_id": e.practitioner_id,
        "previous_list_id": e.previous_list_id,
        "changed_on": iso(e.effective_date),
        "command_id": ctx.command_uuid,
    })


async def _flk_declined(repo: ListingRepository, e: ev.FastLakarkontaktDeclined, ctx: DecisionContext, i: int):
    await repo.execute(
        "INSERT INTO listing.flk_decline (patient_key, care_unit_id, start_on, command_id) VALUES ($1, $2, $3, $4)",
        e.patient_key, e.care_unit_id, e.declined_on, ctx.message_id,
    )
    return OutboxEvent("fast_lakarkontakt.declined.v1", {
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "declined_on": iso(e.declined_on),
        "suppresses_alerts": e.suppresses_alerts,
        "command_id": ctx.command_uuid,
    })


async def _capacity_warning(repo: ListingRepository, e: ev.CapacityWarning, ctx: DecisionContext, i: int):
    return OutboxEvent("capacity.warning.v1", {
        "care_unit_id": e.care_unit_id,
        "list_id": e.list_id,
        "practitioner_id": e.practitioner_id,
        "list_size": e.list_size,
        "capacity": e.capacity,
        "rule_id": "F6",
        "observed_at": rfc3339(ctx.decided_at),
    })


async def _role_ended(repo: ListingRepository, e: ev.PractitionerRoleEnded, ctx: DecisionContext, i: int):
    await repo.execute(
        "UPDATE listing.practitioner_role SET end_on = GREATEST($2, start_on), updated_at = now() "
        "WHERE role_id = $1 AND (end_on IS NULL OR end_on > $2)",
        e.role_id, e.ended_on,
    )
    return None


async def _vk_requested(repo: ListingRepository, e: ev.FastVardkontaktRequested, ctx: DecisionContext, i: int):
    await repo.execute(
        "INSERT INTO listing.fast_vardkontakt_request (patient_key, care_unit_id, requested_on) VALUES ($1, $2, $3)",
        e.patient_key, e.care_unit_id, e.effective_date,
    )
    return None


async def _vk_appointed(repo: ListingRepository, e: ev.FastVardkontaktAppointed, ctx: DecisionContext, i: int):
    appointment_id = derived_id("listing.fast_vardkontakt", ctx.message_id, i, e.patient_key, e.practitioner_id)
    await repo.execute(
        """INSERT INTO listing.fast_vardkontakt (appointment_id, patient_key, care_unit_id, practitioner_id, profession,
                                                 appointed_by_hsa_id, start_on, command_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        appointment_id, e.patient_key, e.care_unit_id, e.practitioner_id, e.profession, e.appointed_by_hsa_id,
        e.appointed_on, ctx.message_id,
    )
    await repo.execute(
        "UPDATE listing.fast_vardkontakt_request SET fulfilled_on = $3 "
        "WHERE patient_key = $1 AND care_unit_id = $2 AND fulfilled_on IS NULL",
        e.patient_key, e.care_unit_id, e.appointed_on,
    )
    return OutboxEvent("fast_vardkontakt.appointed.v1", {
        "appointment_id": appointment_id,
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "practitioner_id": e.practitioner_id,
        "profession": e.profession,
        "appointed_on": iso(e.appointed_on),
        "command_id": ctx.command_uuid,
    })


async def _vk_ended(repo: ListingRepository, e: ev.FastVardkontaktEnded, ctx: DecisionContext, i: int):
    appointment_id = await repo.close_fast_vardkontakt(e.patient_key, e.care_unit_id, e.practitioner_id,
                                                       e.ended_on, e.reason.value)
    if appointment_id is None:
        return None
    return OutboxEvent("fast_vardkontakt.ended.v1", {
        "appointment_id": str(appointment_id),
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "practitioner_id": e.practitioner_id,
        "ended_on": iso(e.ended_on),
        "reason": e.reason.value,
        "command_id": ctx.command_uuid,
    })


def _person_status(status: PopulationStatus):
    async def write(repo: ListingRepository, e: Any, ctx: DecisionContext, i: int):
        await repo.execute(
            "UPDATE listing.person SET population_status = $2, status_date = $3, updated_at = now() "
            "WHERE patient_key = $1",
            e.patient_key, status.value, e.effective_date,
        )
        return None

    return write


async def _protected(repo: ListingRepository, e: ev.ProtectedIdentityRecorded, ctx: DecisionContext, i: int):
    await repo.execute(
        "UPDATE listing.person SET protected_identity = $2, updated_at = now() WHERE patient_key = $1",
        e.patient_key, e.protected,
    )
    return None


async def _sabo(repo: ListingRepository, e: ev.SaboResidenceRecorded, ctx: DecisionContext, i: int):
    await repo.execute(
        "UPDATE listing.person SET sabo_resident = $2, updated_at = now() WHERE patient_key = $1",
        e.patient_key, e.resident,
    )
    return None


def _rejected_data(e: Any, ctx: DecisionContext, patient_key: str, care_unit_id: str | None) -> OutboxEvent:
    return OutboxEvent("listing.rejected.v1", {
        "command_id": ctx.command_uuid,
        "command_type": ctx.command_type[:80],
        "patient_key": patient_key,
        "care_unit_id": care_unit_id,
        "reason_code": e.reason.value,
        "rule_id": e.reason.rule_id.value,
        "message_sv": e.reason.message_sv,
        "message_en": e.reason.message_en,
        "rejected_at": rfc3339(ctx.decided_at),
    })


async def _listing_rejected(repo: ListingRepository, e: ev.ListingRejected, ctx: DecisionContext, i: int):
    return _rejected_data(e, ctx, e.patient_key, e.care_unit_id)


async def _assignment_rejected(repo: ListingRepository, e: ev.AssignmentRejected, ctx: DecisionContext, i: int):
    return _rejected_data(e, ctx, e.patient_key, ctx.care_unit_id)


async def _record_rejected(repo: ListingRepository, e: ev.RecordRejected, ctx: DecisionContext, i: int):
    from flk.security.pseudonym import is_patient_key

    if is_patient_key(e.subject_id):
        return _rejected_data(e, ctx, e.subject_id, None)
    return None  # e.g. an unknown role (F8): not a patient event; counted in metrics, logged


WRITERS = {
    ev.ListingStarted: _listing_started,
    ev.ListingEnded: _listing_ended,
    ev.ListingAwaitingConsent: _awaiting_consent,
    ev.ListingConsentClosed: _consent_closed,
    ev.FastLakarkontaktAssigned: _flk_assigned,
    ev.FastLakarkontaktEnded: _flk_ended,
    ev.CoordinatingFastLakarkontaktChanged: _coordinating_changed,
    ev.FastLakarkontaktDeclined: _flk_declined,
    ev.CapacityWarning: _capacity_warning,
    ev.PractitionerRoleEnded: _role_ended,
    ev.FastVardkontaktRequested: _vk_requested,
    ev.FastVardkontaktAppointed: _vk_appointed,
    ev.FastVardkontaktEnded: _vk_ended,
    ev.PersonDeceased: _person_status(PopulationStatus.DECEASED),
    ev.PersonEmigrated: _person_status(PopulationStatus.EMIGRATED),
    ev.PersonMovedOutOfRegion: _person_status(PopulationStatus.MOVED_OUT_OF_REGION),
    ev.ProtectedIdentityRecorded: _protected,
    ev.SaboResidenceRecorded: _sabo,
    ev.ListingRejected: _listing_rejected,
    ev.AssignmentRejected: _assignment_rejected,
    ev.RecordRejected: _record_rejected,
}
