"""FHIR ingest: read a request (pure, domain/request.py), check each contact's unit against the caller,
then decide and store every Encounter with its events and audit records in one transaction.

* a single Encounter: its issues -> 400 (unreadable) / 403 / 409 / 422 with an OperationOutcome,
  nothing stored or published;
* a ``transaction`` Bundle: all entries or none: any entry's issue -> one OperationOutcome naming each
  problem (``Bundle.entry[i].resource...``), nothing stored or published;
* a ``batch`` Bundle: per entry: the good entries are applied (together, in one database transaction),
  each bad one answers its own status and OperationOutcome in the ``batch-response`` (HTTP 200, as FHIR
  says a batch answers).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from flk.security.access import may_write_visits
from flk.security.audit import AuditRecord
from flk.security.tokens import Principal
from services.ingest.domain.fhir import Issue
from services.ingest.domain.outcome import (
    OUTCOME_STATUS,
    bundle_response,
    information,
    operation_outcome,
    status_for,
    status_text,
)
from services.ingest.domain.request import Entry, ReadRequest, read_bundle, read_encounter
from services.ingest.domain.versions import Decision, decide

WRITE_ACTION = "ingest.encounter.write"


class IngestProbe(Protocol):
    def encounters(self, outcome: str, n: int = 1) -> None: ...
    def request(self, kind: str, status: int, seconds: float) -> None: ...


class NullProbe:
    def encounters(self, outcome: str, n: int = 1) -> None:
        return None

    def request(self, kind: str, status: int, seconds: float) -> None:
        return None


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    published: int = 0  # events queued


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class IngestService:
    def __init__(self, store: Any, pseudonym_key: bytes, *, max_bundle_entries: int = 1000,
                 probe: IngestProbe | None = None, on_commit: Callable[[], None] | None = None,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self.store = store
        self.key = pseudonym_key
        self.max_bundle_entries = max_bundle_entries
        self.probe = probe or NullProbe()
        self.on_commit = on_commit or (lambda: None)
        self.clock = clock
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fhir-reader")

    def close(self) -> None:
        self._reader.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ entry points

    async def encounter(self, raw: Any, principal: Principal, request_id: str | None = None,
                        expected_id: str | None = None) -> Answer:
        read = read_encounter(raw, self.key, expected_id)
        entry = read.entries[0]
        self._authorise(read, principal)
        if entry.issues:
            self.probe.encounters(_refusal(entry))
            return Answer(400 if entry.parse_failed else status_for(entry.issues), operation_outcome(entry.issues))
        decisions, published = await self._apply([entry], principal, request_id)
        decision = decisions[0]
        if decision.outcome == "conflict":
            return Answer(409, operation_outcome([_conflict("Encounter")]))
        return Answer(int(OUTCOME_STATUS[decision.outcome][:3]), information(decision.outcome, decision.visit_id),
                      published)

    async def bundle(self, raw: Any, principal: Principal, request_id: str | None = None) -> Answer:
        # ~1-2 ms of CPU per Encounter (fhir.resources' validation, most of it): a bundle is read in the
        # reader thread, so the event loop still answers health checks and single Encounters meanwhile;
        # one thread, so concurrent bundles queue instead of sharing the GIL by turns (each would be slow)
        read = await asyncio.get_running_loop().run_in_executor(self._reader, read_bundle, raw, self.key,
                                                                self.max_bundle_entries)
        if read.issues:
            self.probe.encounters("refused_bundle")
            return Answer(read.status, operation_outcome(read.issues))
        self._authorise(read, principal)
        bad = [e for e in read.entries if e.issues]
        for e in bad:
            self.probe.encounters(_refusal(e))
        if read.kind == "transaction" and bad:
            status = 400 if any(e.parse_failed for e in bad) else status_for(read.all_issues)
            return Answer(status, operation_outcome(read.all_issues))
        good = [e for e in read.entries if not e.issues and e.version is not None]
        try:
            decisions, published = await self._apply(good, principal, request_id,
                                                     atomic=read.kind == "transaction") if good else ([], 0)
        except _RolledBack as rolled_back:  # a transaction with a conflicting version: nothing of it applied
            issues = [_conflict(e.path) for e, d in zip(good, rolled_back.decisions) if d.outcome == "conflict"]
            return Answer(409, operation_outcome(issues))
        by_entry = {e.index: d for e, d in zip(good, decisions)}
        entries = []
        for e in read.entries:
            if e.issues:
                status = 400 if e.parse_failed else status_for(e.issues)
                entries.append({"response": {"status": status_text(status), "outcome": operation_outcome(e.issues)}})
            elif e.index in by_entry:
                entries.append(_entry_response(e, by_entry[e.index]))
            else:  # a Patient (or Practitioner, ...) read for identity only
                entries.append({"response": {"status": "200 OK", "outcome": information("identity")}})
        return Answer(200, bundle_response(read.kind, entries), published)

    # ------------------------------------------------------------------ internals

    def _authorise(self, read: ReadRequest, principal: Principal) -> None:
        for e in read.entries:
            v = e.version
            if v is not None and v.visit is not None and not may_write_visits(principal, v.visit.care_unit_id):
                e.issues.append(Issue(f"{e.path}.serviceProvider", "your token does not give the right to record "
                                      "visits of this care unit", "forbidden"))
                e.version = None

    async def _apply(self, entries: list[Entry], principal: Principal, request_id: str | None,
                     atomic: bool = False) -> tuple[list[Decision], int]:
        now = self.clock()
        sender = principal.subject
        decisions: list[Decision] = []
        events: list[tuple[str, dict]] = []
        audit: list[AuditRecord] = []
        async with self.store.transaction() as tx:
            ids = [e.version.encounter_id for e in entries if e.version is not None]
            await tx.lock(sender, ids)
            stored = await tx.load(sender, ids)
            changed = {}
            for e in entries:
                v = e.version
                assert v is not None
                d = decide(sender, stored.get(v.encounter_id), v, now)
                decisions.append(d)
                if d.stored is not None:
                    stored[v.encounter_id] = changed[v.encounter_id] = d.stored
                events.extend(d.events)
                if d.events:  # a change to a patient's record: audit-logged with the patient key
                    data = d.events[-1][1]
                    audit.append(AuditRecord(principal, WRITE_ACTION, "allowed",
                                             unit_id=data.get("care_unit_id") or (v.visit.care_unit_id if v.visit else None),
                                             patient_key=data["patient_key"], purpose="fhir ingest",
                                             request_id=request_id, occurred_at=now))
            if atomic and any(d.outcome == "conflict" for d in decisions):
                raise _RolledBack(decisions)
            await tx.save(changed.values(), now)
            await tx.queue(events, now)
            await tx.audit(audit)
        for d in decisions:
            self.probe.encounters(d.outcome)
        if events:
            self.on_commit()
        return decisions, len(events)


class _RolledBack(Exception):
    def __init__(self, decisions: list[Decision]) -> None:
        super().__init__("rolled back")
        self.decisions = decisions


def _conflict(path: str) -> Issue:
    return Issue(f"{path}.meta.versionId", "this version id was ingested with different content; a changed "
                 "Encounter needs a new version id", "conflict")


def _refusal(entry: Entry) -> str:
    codes = {i.code for i in entry.issues}
    if "forbidden" in codes:
        return "refused_forbidden"
    return "refused_unreadable" if entry.parse_failed else "refused_invalid"


def _entry_response(entry: Entry, decision: Decision) -> dict[str, Any]:
    if decision.outcome == "conflict":
        return {"response": {"status": "409 Conflict", "outcome": operation_outcome([_conflict(entry.path)])}}
    response: dict[str, Any] = {"status": OUTCOME_STATUS[decision.outcome], "outcome": information(
        decision.outcome, decision.visit_id)}
    v = entry.version
    if v is not None and v.version_id:
        response["etag"] = f'W/"{v.version_id}"'
    return {"response": response}
