"""Idempotency on the Encounter's id and version, and how a new version replaces the visit.

The continuity service keeps the *first* version of a visit id (services/continuity/domain/patient.py:
"a visit id already recorded or cancelled changes nothing") and removes a visit on its cancellation.
So a new version of an Encounter that changes the visit is published as the cancellation of the old
visit id followed by a new visit id recorded (``visit_id`` = uuid5 of the sender, the Encounter id and
the version: a replay publishes the same ids). Per Encounter:

* the same version again (same ``meta.versionId``, or no versionId and the same content) -> unchanged,
  nothing published; the same versionId with *different* content -> a conflict (refused);
* an older version (a smaller numeric versionId, or an earlier ``meta.lastUpdated``) -> stale, nothing;
* a newer version that is a contact -> ``visit.recorded`` (and, when an earlier version's visit is live
  and says something else, ``visit.cancelled`` of that visit first, reason ``entered_in_error``); a newer
  version whose visit facts are the same -> unchanged (only the version is remembered);
* a newer version that is ``cancelled`` / ``entered-in-error`` / not (yet) a contact -> the live visit
  is cancelled (reason ``cancelled`` / ``entered_in_error`` / ``cancelled``); with no live visit nothing
  is published (there is no visit to cancel), and the Encounter is remembered as cancelled.

Pure: the caller loads the stored state, calls :func:`decide`, and stores the result with its events
in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from flk.events.envelope import derived_id
from services.ingest.domain.mapping import EncounterVersion, VisitFacts

Outcome = Literal["recorded", "replaced", "cancelled", "unchanged", "stale", "not_a_contact", "conflict"]
SOURCE_SYSTEM = "fhir"


@dataclass(frozen=True)
class StoredEncounter:
    """What is remembered of an Encounter: its latest version and the visit it has live (if any)."""

    sender: str
    encounter_id: str
    version_id: str | None
    last_updated: datetime | None
    content_hash: str
    kind: str
    visit_id: str | None  # the live visit published for it
    visit: VisitFacts | None  # that visit's facts (patient key, not the person id)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    events: tuple[tuple[str, dict], ...]  # (event type, data), in publish order
    stored: StoredEncounter | None  # what to remember (None: keep what is stored)
    visit_id: str | None = None  # the live visit after this decision


def visit_id_for(sender: str, version: EncounterVersion) -> str:
    return derived_id("fhir.encounter", sender, version.encounter_id, version.version_key)


def _numeric(version_id: str | None) -> int | None:
    return int(version_id) if version_id is not None and version_id.isdigit() and len(version_id) < 19 else None


def _older(incoming: EncounterVersion, stored: StoredEncounter) -> bool:
    a, b = _numeric(incoming.version_id), _numeric(stored.version_id)
    if a is not None and b is not None:
        return a < b
    if incoming.last_updated is not None and stored.last_updated is not None:
        try:
            return incoming.last_updated < stored.last_updated
        except TypeError:  # one without a time zone: cannot be ordered, take it as newer
            return False
    return False


def decide(sender: str, stored: StoredEncounter | None, incoming: EncounterVersion, now: datetime) -> Decision:
    if stored is not None:
        same_version = (incoming.version_id is not None and incoming.version_id == stored.version_id) or (
            incoming.version_id is None and stored.version_id is None and incoming.content_hash == stored.content_hash)
        if same_version:
            if incoming.content_hash != stored.content_hash:
                return Decision("conflict", (), None, stored.visit_id)
            return Decision("unchanged", (), None, stored.visit_id)
        if _older(incoming, stored):
            return Decision("stale", (), None, stored.visit_id)
    live_id = stored.visit_id if stored is not None else None
    live = stored.visit if stored is not None else None

    def remembered(kind: str, visit_id: str | None, visit: VisitFacts | None) -> StoredEncounter:
        return StoredEncounter(sender, incoming.encounter_id, incoming.version_id, incoming.last_updated,
                               incoming.content_hash, kind, visit_id, visit)

    def cancel(reason: str) -> tuple[str, dict]:
        assert live_id is not None and live is not None
        return ("visit.cancelled.v1", {"visit_id": live_id, "patient_key": live.patient_key,
                                       "cancelled_at": now.isoformat(), "reason": reason})

    if incoming.kind == "contact":
        assert incoming.visit is not None
        if live_id is not None and live == incoming.visit:
            return Decision("unchanged", (), remembered("contact", live_id, live), live_id)
        new_id = visit_id_for(sender, incoming)
        record = ("visit.recorded.v1", {"visit_id": new_id, **incoming.visit.as_dict(), "source_system": SOURCE_SYSTEM})
        if live_id is not None:
            return Decision("replaced", (cancel("entered_in_error"), record),
                            remembered("contact", new_id, incoming.visit), new_id)
        return Decision("recorded", (record,), remembered("contact", new_id, incoming.visit), new_id)
    reason = "entered_in_error" if incoming.kind == "entered_in_error" else "cancelled"
    outcome: Outcome = "not_a_contact" if incoming.kind == "not_a_contact" else "cancelled"
    events = (cancel(reason),) if live_id is not None else ()
    return Decision(outcome, events, remembered(incoming.kind, None, None), None)

