"""Handlers: one per consumed message type, registered in two plain dicts.

* :data:`COMMAND_HANDLERS` — the contract commands of ``listing.commands.v1`` (Kafka) and of the
  REST API (the same functions: the API builds the same :class:`Message`).
* :data:`FACT_HANDLERS` — facts from the roster, the population register, the municipalities and
  the ACG run.

Every handler runs in one transaction (:class:`UnitOfWork`): lock the person row(s)
(``SELECT ... FOR UPDATE``), check the inbox (a repeated message changes nothing and answers what
the first one did), load the slice of state the decision reads (domain README, "State an adapter
must build"), ``decide`` under the region's policy profile, write the rows the events mean, the
outbox rows and the inbox row, commit. Kafka commands and facts run the same handlers a chunk at a
time (service_layer/chunks.py, service_layer/fact_chunks.py): ``deps.uow()`` then gives the message
its share of the chunk's transaction, whose repository reads from set-based prefetches and plans
the writes.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flk.events.envelope import derived_id
from services.listing.adapters.event_writers import DecisionContext, OutboxEvent
from services.listing.adapters.repository import ListingRepository
from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.model import (
    Channel,
    ExemptionReason,
    FlkEndReason,
    GuardianDecision,
    Initiator,
    ListingEndReason,
    ListingOrigin,
    ListingState,
    months_before,
)
from services.listing.domain.policy import NoProfileVersion, PolicyProfile, profile_for
from services.listing.domain.reasons import RejectionReason
from services.listing.domain.rules import decide, limit_holder
from services.listing.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """A command or fact to handle: its id (command_id / event id), contract type and data."""

    message_id: str
    message_type: str  # e.g. 'listing.request.v1'
    data: dict[str, Any]
    received_at: datetime


@dataclass
class Outcome:
    """What handling a message did. Stored in the inbox; the REST API answers it."""

    message_id: str
    status: str  # 'accepted' | 'rejected' | 'recorded'
    events: list[dict] = field(default_factory=list)  # [{'type': ..., 'data': ...}] as published
    rejection: dict | None = None  # reason_code, rule_id, message_sv, message_en, decided_under
    decided_under: str | None = None
    replayed: bool = False

    def as_json(self) -> dict:
        return {"message_id": self.message_id, "status": self.status, "events": self.events,
                "rejection": self.rejection, "decided_under": self.decided_under}

    @classmethod
    def from_json(cls, data: dict) -> Outcome:
        return cls(message_id=data["message_id"], status=data["status"], events=data.get("events", []),
                   rejection=data.get("rejection"), decided_under=data.get("decided_under"), replayed=True)


@dataclass
class Deps:
    """What handlers need besides the message (given by the composition root)."""

    pool: Any
    profile_name: str
    timezone: str
    clock: Callable[[], datetime]
    on_decided: Callable[[Message, Outcome, list[ev.Event]], None] = lambda m, o, e: None
    #: a chunk's share of its transaction (service_layer/chunks.py), or a fake in unit tests;
    #: None: one PostgreSQL transaction per message (UnitOfWork)
    uow_factory: Callable[[], Any] | None = None

    def uow(self) -> Any:
        return self.uow_factory() if self.uow_factory is not None else UnitOfWork(self.pool)

    def local_date(self, at: datetime) -> date:
        return at.astimezone(ZoneInfo(self.timezone)).date()

    def policy(self, on: date) -> PolicyProfile:
        try:
            return profile_for(self.profile_name, on)
        except NoProfileVersion:
            raise InvalidMessage("the region's policy profile has no version valid on the effective date") from None


Handler = Callable[[Message, Deps], Awaitable[Outcome]]


class InvalidMessage(ValueError):
    """The message is valid against its contract but can never be handled (reason in the text,
    no field values): the REST API answers 422, the consumer dead-letters it."""

REJECTIONS = (ev.ListingRejected, ev.AssignmentRejected, ev.RecordRejected)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def effective_date(data: dict, deps: Deps) -> date:
    """The command's effective date, else the local date it was requested."""
    if data.get("effective_date"):
        return date.fromisoformat(data["effective_date"])
    return deps.local_date(_parse_time(data["requested_at"]))


# --------------------------------------------------------------------------- the decision loop


async def _decide_and_persist(
    repo: ListingRepository, msg: Message, deps: Deps, command: Any, state: ListingState, policy: PolicyProfile,
    care_unit_id: str | None, pre_decided: list[ev.Event] | None = None,
) -> tuple[Outcome, list[ev.Event]]:
    events = pre_decided if pre_decided is not None else decide(state, command, policy)
    now = deps.clock()
    ctx = DecisionContext(message_id=msg.message_id, command_type=msg.message_type, decided_at=now,
                          care_unit_id=care_unit_id)
    published = await repo.persist(events, ctx)
    await repo.add_outbox(published, now)
    return _outcome(msg, events, published, policy), events


def _outcome(msg: Message, events: list[ev.Event], published: list[OutboxEvent], policy: PolicyProfile) -> Outcome:
    rejection = next((e for e in events if isinstance(e, REJECTIONS)), None)
    out = [{"type": p.event_type, "data": p.data} for p in published]
    if rejection is not None:
        return Outcome(msg.message_id, "rejected", out, {
            "reason_code": rejection.reason.value,
            "rule_id": rejection.reason.rule_id.value,
            "message_sv": rejection.reason.message_sv,
            "message_en": rejection.reason.message_en,
            "decided_under": rejection.decided_under,
        }, decided_under=policy.ref)
    return Outcome(msg.message_id, "accepted", out, decided_under=policy.ref)


async def _patient_state(repo: ListingRepository, keys: list[str], policy: PolicyProfile, on: date,
                         **extra: Any) -> ListingState:
    since = months_before(on, policy.l5_window_months + 1)
    records = await repo.load_patients(keys, since)
    return ListingState(patients=records, **extra)


async def _patient_command(
    msg: Message, deps: Deps, patient_key: str,
    build: Callable[[ListingRepository, date], Awaitable[tuple[Any, dict[str, Any], list[ev.Event] | None]]],
    on: date, care_unit_id: str | None,
) -> Outcome:
    """Lock the person, dedupe, build the command and its state slice, decide, persist — one transaction."""
    async with deps.uow() as uow:
        repo = uow.repo
        await repo.lock_persons([patient_key])
        prior = await repo.inbox_outcome(msg.message_id)
        if prior is not False:
            return Outcome.from_json(prior) if prior else Outcome(msg.message_id, "recorded", replayed=True)
        policy = deps.policy(on)
        command, extra, pre = await build(repo, on)
        state = await _patient_state(repo, [patient_key], policy, on, **extra)
        if pre is None and isinstance(command, cmd.EndListing):
            pre = _end_listing_unit_check(state, command, policy, care_unit_id)
        outcome, events = await _decide_and_persist(repo, msg, deps, command, state, policy, care_unit_id, pre)
        await repo.record_inbox(msg.message_id, msg.message_type, outcome.as_json())
    deps.on_decided(msg, outcome, events)
    return outcome


def _end_listing_unit_check(state: ListingState, c: cmd.EndListing, policy: PolicyProfile,
                            care_unit_id: str | None) -> list[ev.Event] | None:
    """The contract's listing.end names the unit: ending a listing at another unit is rejected
    (the domain's EndListing ends whatever is open; the adapter adds this check)."""
    record = state.patients.get(c.patient_key)
    listing = record.open_listing if record is not None else None
    if listing is not None and care_unit_id is not None and listing.care_unit_id != care_unit_id:
        return [ev.ListingRejected(patient_key=c.patient_key, care_unit_id=care_unit_id, effective_date=c.effective_date,
                                   reason=RejectionReason.NOT_LISTED, decided_under=policy.ref)]
    return None


# --------------------------------------------------------------------------- contract commands


async def handle_request_listing(msg: Message, deps: Deps) -> Outcome:
    d = msg.data
    on = effective_date(d, deps)

    async def build(repo: ListingRepository, on: date):
        command = cmd.RequestListing(
            patient_key=d["patient_key"],
            care_unit_id=d["care_unit_id"],
            effective_date=on,
            initiated_by=Initiator(d["initiated_by"]),
            channel=Channel(d["channel"]),
            origin=ListingOrigin(d["origin"]),
            exemption_reason=ExemptionReason(d["exemption_reason"]) if d.get("exemption_reason") else None,
            consenting_guardian_keys=frozenset(d.get("consenting_guardian_keys") or ()),
            guardian_count=d.get("guardian_count"),
        )
        return command, await _unit_slice(repo, deps, d["care_unit_id"], on), None

    return await _patient_command(msg, deps, d["patient_key"], build, on, d["care_unit_id"])


async def handle_end_listing(msg: Message, deps: Deps) -> Outcome:
    d = msg.data
    on = effective_date(d, deps)

    async def build(repo: ListingRepository, on: date):
        return cmd.EndListing(patient_key=d["patient_key"], effective_date=on, reason=ListingEndReason(d["reason"])), {}, None

    return await _patient_command(msg, deps, d["patient_key"], build, on, d["care_unit_id"])


async def _resolve_list(repo: ListingRepository, d: dict, on: date) -> str:
    if d.get("list_id"):
        return d["list_id"]
    if d.get("practitioner_id"):
        found = await repo.doctor_list_of(d["practitioner_id"], d["care_unit_id"], on)
        if found:
            return found
    return ""  # the domain answers list_unknown (F4)


async def handle_assign_flk(msg: Message, deps: Deps) -> Outcome:
    d = msg.data
    on = effective_date(d, deps)

    async def build(repo: ListingRepository, on: date):
        list_id = await _resolve_list(repo, d, on)
        command = cmd.AssignFastLakarkontakt(patient_key=d["patient_key"], list_id=list_id, effective_date=on,
                                             coordinating=bool(d.get("coordinating", False)),
                                             practitioner_id=d.get("practitioner_id"))
        doctor_list, role, size = await repo.load_list(list_id, lock_role=True) if list_id else (None, None, 0)
        extra: dict[str, Any] = {}
        if doctor_list is None and d.get("practitioner_id"):  # who they are decides the reason (F1 or F4)
            extra["roles"] = {r.role_id: r for r in await repo.roles_of_practitioner(d["practitioner_id"])}
        if doctor_list is not None:
            extra["lists"] = {doctor_list.list_id: doctor_list}
            extra["list_size_by_list"] = {doctor_list.list_id: size}
            if role is not None:
                extra["roles"] = {role.role_id: role}
        return command, extra, None

    return await _patient_command(msg, deps, d["patient_key"], build, on, d["care_unit_id"])


_FLK_END_REASONS = {"ended_by_patient": FlkEndReason.ENDED_BY_PATIENT, "ended_by_unit": FlkEndReason.ENDED_BY_UNIT,
                    "replaced": FlkEndReason.REPLACED}


async def handle_end_flk(msg: Message, deps: Deps) -> Outcome:
    d = msg.data
    on = effective_date(d, deps)

    async def build(repo: ListingRepository, on: date):
        list_id = await _resolve_list(repo, d, on)
        return cmd.EndFastLakarkontakt(patient_key=d["patient_key"], list_id=list_id, effective_date=on,
                                       reason=_FLK_END_REASONS[d["reason"]]), {}, None

    return await _patient_command(msg, deps, d["patient_key"], build, on, d["care_unit_id"])


async def handle_decline_flk(msg: Message, deps: Deps) -> Outcome:
    d = msg.data
    on = effective_date(d, deps)

    async def build(repo: ListingRepository, on: date):
        return cmd.DeclineFastLakarkontakt(patient_key=d["patient_key"], effective_date=on), {}, None

    return await _patient_command(msg, deps, d["patient_key"], build, on, d["care_unit_id"])


async def handle_appoint_vardkontakt(msg: Message, deps: Deps) -> Outcome:
    d = msg.data
    on = effective_date(d, deps)

    async def build(repo: ListingRepository, on: date):
        command = cmd.AppointFastVardkontakt(
            patient_key=d["patient_key"], care_unit_id=d["care_unit_id"], practitioner_id=d["practitioner_id"],
            profession=d["profession"], appointed_by_hsa_id=d.get("requested_by") or "", effective_date=on)
        return command, {"units": await repo.load_units([d["care_unit_id"]])}, None

    return await _patient_command(msg, deps, d["patient_key"], build, on, d["care_unit_id"])


async def handle_consent(msg: Message, deps: Deps) -> Outcome:
    """P3: a guardian's answer to the child's pending listing request. The ordinary listing decision
    may run (consent complete), so the unit and its L7 count are read as for a listing request."""
    d = msg.data
    on = effective_date(d, deps)

    async def build(repo: ListingRepository, on: date):
        command = cmd.AnswerListingConsent(patient_key=d["patient_key"], care_unit_id=d["care_unit_id"],
                                           guardian_key=d["guardian_key"], effective_date=on,
                                           decision=GuardianDecision(d["decision"]))
        return command, await _unit_slice(repo, deps, d["care_unit_id"], on), None

    return await _patient_command(msg, deps, d["patient_key"], build, on, d["care_unit_id"])


async def _unit_slice(repo: ListingRepository, deps: Deps, care_unit_id: str, on: date) -> dict[str, Any]:
    """The target unit and, when a listing limit applies on the responsibility date, the locked counts
    (L7): a filial's limit is its main unit's, over the main unit and all its filials (seed 004)."""
    units = await repo.load_units([care_unit_id])
    counts: dict[str, int] = {}
    unit = units.get(care_unit_id)
    if unit is not None and unit.main_unit_id is not None:
        units = {**units, **await repo.load_units([unit.main_unit_id])}
    holder = limit_holder(ListingState(units=units), unit) if unit is not None else None
    policy = deps.policy(on)
    responsibility_from = date.fromordinal(on.toordinal() + policy.l6_responsibility_offset_days)
    if holder is not None and policy.l7_enforced and holder.listing_limit_on(responsibility_from) is not None:
        await repo.lock_unit(holder.hsa_id)  # L7 counts: serialise listings at a limited unit and its filials
        family = await repo.unit_family(holder.hsa_id)
        units = {**units, **await repo.load_units(family)}
        for member in family:
            counts[member] = await repo.listed_count(member)
    return {"units": units, "listed_count_by_unit": counts}


async def expire_consents(deps: Deps, today: date | None = None, limit: int = 500) -> int:
    """P3: the expiry sweep. Every child whose pending listing request's wait is over (``expires_on <=
    today``) gets ``ExpireListingConsent`` decided in its own transaction (person locked, as a command):
    the request closes ``expired`` and ``listing.rejected.v1`` (``guardian_consent_expired``) is
    published. Returns how many requests expired; idempotent (a request already closed gives nothing)."""
    today = today or deps.local_date(deps.clock())
    async with deps.uow() as uow:
        due = await uow.repo.consents_due(today, limit)
    expired = 0
    for key, care_unit_id, requested_on in due:
        # the message id names the request, so its rejection's command_id is the same on every attempt
        msg = Message(derived_id("listing.p3_expiry", key, care_unit_id, requested_on.isoformat()),
                      "listing.consent_expiry", {"patient_key": key}, deps.clock())
        async with deps.uow() as uow:
            repo = uow.repo
            await repo.lock_persons([key])
            policy = deps.policy(today)
            state = await _patient_state(repo, [key], policy, today)
            command = cmd.ExpireListingConsent(patient_key=key, effective_date=today)
            outcome, events = await _decide_and_persist(repo, msg, deps, command, state, policy, care_unit_id)
        if events:
            expired += 1
            deps.on_decided(msg, outcome, events)
    return expired


COMMAND_HANDLERS: dict[str, Handler] = {
    "listing.request.v1": handle_request_listing,
    "listing.consent.v1": handle_consent,
    "listing.end.v1": handle_end_listing,
    "fast_lakarkontakt.assign.v1": handle_assign_flk,
    "fast_lakarkontakt.end.v1": handle_end_flk,
    "fast_lakarkontakt.decline.v1": handle_decline_flk,
    "fast_vardkontakt.appoint.v1": handle_appoint_vardkontakt,
}


# --------------------------------------------------------------------------- facts


async def _simple_fact(msg: Message, deps: Deps, write: Callable[[ListingRepository], Awaitable[Any]]) -> Outcome:
    async with deps.uow() as uow:
        if await uow.repo.inbox_outcome(msg.message_id) is not False:
            return Outcome(msg.message_id, "recorded", replayed=True)
        await write(uow.repo)
        await uow.repo.record_inbox(msg.message_id, msg.message_type, None)
    return Outcome(msg.message_id, "recorded")


async def handle_role_upsert(msg: Message, deps: Deps) -> Outcome:
    """Roster: a role started or changed (reference data; a doctor role gets a list)."""
    return await _simple_fact(msg, deps, lambda repo: repo.upsert_role(msg.data))


async def handle_unit_contracted(msg: Message, deps: Deps) -> Outcome:
    """The region's unit register (L3 contracts, L7 limits, F3 fictive lists); latest event = state."""
    recorded_on = deps.local_date(_parse_time(msg.data["recorded_at"]))

    async def write(repo: ListingRepository) -> None:
        try:
            await repo.apply_unit_register(msg.data, recorded_on)
        except ValueError as exc:
            raise InvalidMessage(f"care unit register: {exc}") from None

    return await _simple_fact(msg, deps, write)


async def handle_risk_assessed(msg: Message, deps: Deps) -> Outcome:
    return await _simple_fact(msg, deps, lambda repo: repo.add_risk_assessment(msg.data))


async def handle_role_ended(msg: Message, deps: Deps) -> Outcome:
    """F8: the doctor's role ended — lists and listings stay, assignments end (``doctor_left``)."""
    d = msg.data
    on = date.fromisoformat(d["ended_on"])
    async with deps.uow() as uow:
        repo = uow.repo
        if (prior := await repo.inbox_outcome(msg.message_id)) is not False:
            return Outcome.from_json(prior) if prior else Outcome(msg.message_id, "recorded", replayed=True)
        role, lists, keys = await repo.role_with_lists(d["role_id"])  # the role row is locked first
        policy = deps.policy(on)
        await repo.lock_persons(keys)
        state = await _patient_state(
            repo, keys, policy, on,
            roles={role.role_id: role} if role is not None else {},
            lists={lst.list_id: lst for lst in lists},
        )
        command = cmd.RecordPractitionerRoleEnded(role_id=d["role_id"], effective_date=on)
        outcome, events = await _decide_and_persist(repo, msg, deps, command, state, policy, d["care_unit_id"])
        if any(isinstance(e, ev.RecordRejected) for e in events):
            log.warning("roster: role ended for a role the register does not know (no assignments to end)")
        await repo.record_inbox(msg.message_id, msg.message_type, outcome.as_json())
    deps.on_decided(msg, outcome, events)
    return outcome


_STATUS_COMMANDS = {
    "deceased": cmd.RecordPersonDeceased,
    "emigrated": cmd.RecordPersonEmigrated,
    "moved_out_of_region": cmd.RecordPersonMovedOutOfRegion,
}


async def handle_person(msg: Message, deps: Deps) -> Outcome:
    """Population register (P1, P2): store the person (ids and flags only); death, emigration,
    moving out and protected identity go through ``decide`` (ending listings and FLKs, P1)."""
    d = msg.data
    key = d["patient_key"]
    on = date.fromisoformat(d["status_date"]) if d.get("status_date") else deps.local_date(_parse_time(d["updated_at"]))
    async with deps.uow() as uow:
        repo = uow.repo
        await repo.lock_persons([key])
        if (prior := await repo.inbox_outcome(msg.message_id)) is not False:
            return Outcome.from_json(prior) if prior else Outcome(msg.message_id, "recorded", replayed=True)
        previous = await repo.upsert_person(
            key, population_status=d["status"], home_region=d.get("region_code"),
            birth_date=date.fromisoformat(d["birth_date"]) if d.get("birth_date") else None,
            status_date=on if d["status"] != "folkbokford" else None,
            guardian_keys=d.get("guardian_keys"),
        )
        commands: list[Any] = []
        if previous is None:  # a new person: nothing to end; store the flags as given
            if d.get("protected_identity"):
                await repo.mark_protected_identity(key)
        else:
            if d["status"] in _STATUS_COMMANDS and d["status"] != previous:
                commands.append(_STATUS_COMMANDS[d["status"]](patient_key=key, effective_date=on))
            if "protected_identity" in d:
                commands.append(cmd.RecordProtectedIdentity(patient_key=key, effective_date=on,
                                                            protected=bool(d["protected_identity"])))
        all_events: list[ev.Event] = []
        policy = deps.policy(on)
        for command in commands:
            state = await _patient_state(repo, [key], policy, on)
            _, events = await _decide_and_persist(repo, msg, deps, command, state, policy, None)
            all_events += events
        await repo.record_inbox(msg.message_id, msg.message_type, None)
    outcome = _outcome(msg, all_events, [], policy) if all_events else Outcome(msg.message_id, "recorded")
    if all_events:
        deps.on_decided(msg, outcome, all_events)
    return outcome


async def handle_residence(msg: Message, deps: Deps) -> Outcome:
    """SÄBO residence (municipalities): keep the period; the person's flag follows today's residence."""
    d = msg.data
    key = d["patient_key"]
    async with deps.uow() as uow:
        repo = uow.repo
        await repo.lock_persons([key])
        if await repo.inbox_outcome(msg.message_id) is not False:
            return Outcome(msg.message_id, "recorded", replayed=True)
        await repo.upsert_residence(d)
        today = deps.local_date(deps.clock())
        resident = await repo.sabo_resident_on(key, today)
        events: list[ev.Event] = []
        policy = deps.policy(today)
        state = await _patient_state(repo, [key], policy, today)
        if key in state.patients:
            command = cmd.RecordSaboResidence(patient_key=key, effective_date=today, resident=resident)
            _, events = await _decide_and_persist(repo, msg, deps, command, state, policy, None)
        await repo.record_inbox(msg.message_id, msg.message_type, None)
    return Outcome(msg.message_id, "recorded")


FACT_HANDLERS: dict[str, Handler] = {
    "practitioner_role.started.v1": handle_role_upsert,
    "practitioner_role.changed.v1": handle_role_upsert,
    "practitioner_role.ended.v1": handle_role_ended,
    "person.registered.v1": handle_person,
    "person.updated.v1": handle_person,
    "residence.recorded.v1": handle_residence,
    "risk.assessed.v1": handle_risk_assessed,
    "care_unit.contracted.v1": handle_unit_contracted,
}
