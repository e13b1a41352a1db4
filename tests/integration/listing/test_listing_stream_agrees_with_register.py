"""The event stream is a contract: random command sequences go through the listing service against
PostgreSQL (the handlers the REST API and the Kafka consumers call), and three views of the result
must agree —

* the **register**: the rows the service's SQL writers left in PostgreSQL;
* the **stream**: the ``listing.events.v1`` records the outbox relay published to Kafka, folded the
  way a downstream consumer folds them (nothing but the published contract);
* **evolve**: the same commands decided and folded by the pure domain (``decide`` + ``evolve``) over
  the whole world in memory, where the service decides over slices it loads from the register.

Every step also compares the service's answer (accepted, or rejected with a reason) with the pure
domain's decision. Commands are drawn from the pure state (hypothesis ``st.data()``), so most are
about things that exist and the accepted paths run, not only the rejections; every command kind of
the contracts (listing, FLK, fast vårdkontakt, a guardian's consent) and the register facts that end
things (a doctor leaving, death, emigration, moving out, SÄBO residence, the child's guardianship) take
part, and the P3 expiry sweep runs, under every policy profile. A minor's listing request by one of two
guardians is pending in all three views until the other guardian consents or refuses, it expires, a
newer request supersedes it or the child leaves the population.

``FLK_STREAM_PROPERTY_EXAMPLES`` sets the number of examples (default 100, each up to 30 steps: about
20 s; ``FLK_STREAM_PROPERTY_SHRINK=0`` skips shrinking a failure, which takes minutes). What it found
when it was written, each fixed and kept by a named test: a fast vårdkontakt's end (death,
emigration) was never published (``test_P1_a_death_ends_the_fast_vardkontakt_and_its_end_is_published``);
an FLK assigned on the day of relisting at a unit overlapped the previous one on the same list, which
the register refused after the domain had accepted it
(``test_F4_an_flk_assigned_on_the_day_of_relisting_starts_with_the_units_responsibility``); and, read
while fixing the writers, a change of coordinating FLK decided in a chunk of commands was not published
(``test_F5_a_change_of_coordinating_flk_decided_in_a_chunk_is_published_with_its_doctor``).
"""
from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from itertools import count
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from flk.events.envelope import make_record, read_record
from flk.events.registry import registry
from flk.settings import PlatformSettings
from services.listing.adapters.relay import listing_relay
from services.listing.adapters.repository import ListingRepository
from services.listing.bootstrap import build_deps
from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.evolve import evolve_all
from services.listing.domain.model import (
    Channel,
    ExemptionReason,
    FlkEndReason,
    Initiator,
    ListingEndReason,
    ListingOrigin,
    ListingState,
    PatientRecord,
    PopulationStatus,
)
from services.listing.domain.policy import profile_for
from services.listing.domain.rules import decide
from services.listing.service_layer.dispatch import handle_message
from services.listing.domain.model import GuardianDecision
from services.listing.service_layer.handlers import REJECTIONS, Message, _end_listing_unit_check, expire_consents
from services.listing.settings import ListingSettings
from tests.support.builders import a_patient_key

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FLK_STREAM_PROPERTY_EXAMPLES", "100"))
#: shrinking a failure takes minutes (each example runs the service); FLK_STREAM_PROPERTY_SHRINK=0 skips it
PHASES = [p for p in Phase if p is not Phase.shrink or os.environ.get("FLK_STREAM_PROPERTY_SHRINK", "1") == "1"]
START = date(2021, 6, 1)
#: kronoberg twice: the only profile with several FLKs, where coordination moves (F5)
PROFILES = ["national", "vastmanland", "kronoberg", "kronoberg", "kalmar"]
_serial = count(1)


# ---------------------------------------------------------------- the region of one example


@dataclass
class Region:
    """Units, roles and persons of one example (ids of their own: examples share the database)."""

    n: int
    unit_a: str = ""
    unit_b: str = ""
    roles: dict[str, dict] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)  # the population register, as last told
    residence: dict[str, str] = field(default_factory=dict)  # patient → residence id
    #: the child's guardians as the population register states them (None: the register is silent, v1)
    guardians: list[str] | None = None

    def __post_init__(self) -> None:
        self.unit_a, self.unit_b = f"SE2321000016-P{self.n}A", f"SE2321000016-P{self.n}B"
        doctor = {"profession": "läkare", "legitimerad": True, "employment_type": "tillsvidare"}
        self.roles = {
            f"r{self.n}-a1": {**doctor, "practitioner_id": f"SE2321000016-P{self.n}L1", "care_unit_id": self.unit_a},
            f"r{self.n}-a2": {**doctor, "practitioner_id": f"SE2321000016-P{self.n}L2", "care_unit_id": self.unit_a,
                              "employment_type": "hyr"},
            f"r{self.n}-a4": {**doctor, "practitioner_id": f"SE2321000016-P{self.n}L4", "care_unit_id": self.unit_a},
            f"r{self.n}-b1": {**doctor, "practitioner_id": f"SE2321000016-P{self.n}L3", "care_unit_id": self.unit_b},
            f"r{self.n}-a3": {"profession": "sjuksköterska", "legitimerad": True, "employment_type": "tillsvidare",
                              "practitioner_id": f"SE2321000016-P{self.n}S1", "care_unit_id": self.unit_a},
        }
        self.keys = [a_patient_key(5000 + self.n * 10 + i) for i in range(4)]
        self.status = {k: "folkbokford" for k in self.keys}

    def births(self) -> dict[str, tuple[str, str]]:
        adult, child, elder, far = self.keys
        return {adult: ("1980-03-03", "19"), child: ("2014-02-01", "19"), elder: ("1938-07-07", "19"),
                far: ("1970-01-01", "07")}


#: the child's guardians (P3) and someone who is not one
GUARDIAN_1, GUARDIAN_2, NOT_A_GUARDIAN = a_patient_key(9001), a_patient_key(9002), a_patient_key(9003)


def _rfc3339(on: date) -> str:
    return datetime.combine(on, time(10), timezone.utc).isoformat().replace("+00:00", "Z")


def _facts(region: Region, limit_a: int | None) -> list[tuple[str, dict]]:
    facts: list[tuple[str, dict]] = []
    since = (START - timedelta(days=400)).isoformat()
    for unit, limit in ((region.unit_a, limit_a), (region.unit_b, None)):
        facts.append(("care_unit.contracted.v1", {
            "care_unit_id": unit, "name": f"Vårdcentralen {unit[-3:]}", "region_code": "19", "contract_from": since,
            "contract_to": None,
            "listing_limit": {"max_listed": limit, "valid_from": since} if limit is not None else None, "verksamhetschef_id": f"SE2321000016-P{region.n}C",
            "fictive_lists": [{"list_id": f"F-P{region.n}{unit[-1]}", "name": "Dr X"}],
            "recorded_at": _rfc3339(START - timedelta(days=400))}))
    for role_id, role in region.roles.items():
        facts.append(("practitioner_role.started.v1", {
            "role_id": role_id, "specialty": "allmanmedicin", "fte": 1.0, "valid_from": since, **role}))
    child = region.keys[1]
    for key, (birth, home) in region.births().items():
        person = {"patient_key": key, "id_kind": "personnummer", "birth_date": birth, "region_code": home,
                  "protected_identity": False, "status": "folkbokford", "updated_at": _rfc3339(START - timedelta(days=400))}
        if key == child and region.guardians is not None:
            person["guardian_keys"] = region.guardians
        facts.append(("person.registered.v1", person))
    return facts


# ---------------------------------------------------------------- one step: a message and its pure twin


@dataclass
class Step:
    message_type: str
    data: dict[str, Any]
    #: what the handler decides, over the whole state instead of a slice (None: the register records a
    #: fact and decides nothing, e.g. a person whose status did not change)
    pure: Callable[[ListingState, Any], list[ev.Event]] | None
    #: what the fact itself changes in the register before anything is decided (reference data)
    fact: Callable[[ListingState], ListingState] | None = None
    #: not a message: how the service runs the step (the P3 expiry sweep)
    run: Callable[[Any, datetime], Any] | None = None


def _command(key: str, unit: str, on: date, **fields: Any) -> dict:
    return {"command_id": str(uuid.uuid4()), "patient_key": key, "care_unit_id": unit, "requested_at": _rfc3339(on),
            "channel": "ehr", "effective_date": on.isoformat(), **fields}


def _weighted(*options: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    table = [strategy for weight, strategy in options for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def _request(key: str, on: date, unit: str, d: st.DataObject) -> Step:
    data = _command(key, unit, on, origin=d.draw(st.sampled_from(["active_choice", "no_choice_placement", "assigned"])),
                    initiated_by=d.draw(st.sampled_from(["person", "person", "region"])),
                    channel=d.draw(st.sampled_from(["1177", "ehr", "admin"])))
    if d.draw(st.integers(0, 4)) == 0:
        data["exemption_reason"] = d.draw(st.sampled_from(["sarskilda_skal", "unit_closed", "moved"]))
    g1, g2 = GUARDIAN_1, GUARDIAN_2
    guardians = d.draw(st.sampled_from([None, [g1], [g1], [g2], [g1, g2], [NOT_A_GUARDIAN]]))
    if guardians is not None:
        data["consenting_guardian_keys"] = guardians
        data["guardian_count"] = d.draw(st.integers(1, 2))
    command = cmd.RequestListing(
        patient_key=key, care_unit_id=unit, effective_date=on, initiated_by=Initiator(data["initiated_by"]),
        channel=Channel(data["channel"]), origin=ListingOrigin(data["origin"]),
        exemption_reason=ExemptionReason(data["exemption_reason"]) if data.get("exemption_reason") else None,
        consenting_guardian_keys=frozenset(data.get("consenting_guardian_keys") or ()),
        guardian_count=data.get("guardian_count"))
    return Step("listing.request.v1", data, lambda s, policy: decide(s, command, policy))


def _consent(key: str, on: date, unit: str, d: st.DataObject) -> Step:
    guardian = d.draw(st.sampled_from([GUARDIAN_1, GUARDIAN_2, GUARDIAN_2, NOT_A_GUARDIAN]))
    decision = d.draw(st.sampled_from(["consent", "consent", "consent", "refuse"]))
    command = cmd.AnswerListingConsent(patient_key=key, care_unit_id=unit, guardian_key=guardian, effective_date=on,
                                       decision=GuardianDecision(decision))
    return Step("listing.consent.v1", _command(key, unit, on, guardian_key=guardian, decision=decision),
                lambda s, policy: decide(s, command, policy))


def _expiry(region: Region, on: date) -> Step:
    """The P3 sweep on ``on`` (it expires every open request whose wait is over, the region's all)."""
    def pure(s: ListingState, policy: Any) -> list[ev.Event]:
        return [e for k in region.keys for e in decide(s, cmd.ExpireListingConsent(patient_key=k, effective_date=on),
                                                       policy)]

    return Step("p3.expiry_sweep", {"today": on.isoformat()}, pure,
                run=lambda deps, now: expire_consents(deps, today=on, limit=100_000))


def _guardianship(region: Region, key: str, on: date, d: st.DataObject) -> Step:
    """The register states the child's guardians anew (reference data: no decision)."""
    guardians = d.draw(st.sampled_from([[GUARDIAN_1, GUARDIAN_2], [GUARDIAN_1], [GUARDIAN_2, NOT_A_GUARDIAN]]))
    birth, home = region.births()[key]
    data = {"patient_key": key, "birth_date": birth, "region_code": home, "status": region.status[key],
            "guardian_keys": guardians, "updated_at": _rfc3339(on)}

    def fact(s: ListingState) -> ListingState:
        record = s.patients[key]
        return s.with_patient(replace(record, person=replace(record.person, guardian_keys=frozenset(guardians))))

    return Step("person.updated.v1", data, None, fact)


def _end_listing(key: str, on: date, unit: str, d: st.DataObject) -> Step:
    reason = d.draw(st.sampled_from(["ended_by_patient", "ended_by_region", "unit_closed"]))
    command = cmd.EndListing(patient_key=key, effective_date=on, reason=ListingEndReason(reason))

    def pure(s: ListingState, policy: Any) -> list[ev.Event]:
        return _end_listing_unit_check(s, command, policy, unit) or decide(s, command, policy)

    return Step("listing.end.v1", _command(key, unit, on, reason=reason), pure)


def _assign(key: str, on: date, unit: str, list_id: str, d: st.DataObject) -> Step:
    coordinating = d.draw(st.booleans())
    command = cmd.AssignFastLakarkontakt(patient_key=key, list_id=list_id, effective_date=on, coordinating=coordinating)
    return Step("fast_lakarkontakt.assign.v1", _command(key, unit, on, list_id=list_id, coordinating=coordinating),
                lambda s, policy: decide(s, command, policy))


def _end_flk(key: str, on: date, unit: str, list_id: str, d: st.DataObject) -> Step:
    reason = d.draw(st.sampled_from(["ended_by_patient", "ended_by_unit", "replaced"]))
    command = cmd.EndFastLakarkontakt(patient_key=key, list_id=list_id, effective_date=on, reason=FlkEndReason(reason))
    return Step("fast_lakarkontakt.end.v1", _command(key, unit, on, list_id=list_id, reason=reason),
                lambda s, policy: decide(s, command, policy))


def _decline(key: str, on: date, unit: str) -> Step:
    command = cmd.DeclineFastLakarkontakt(patient_key=key, effective_date=on)
    return Step("fast_lakarkontakt.decline.v1", _command(key, unit, on), lambda s, policy: decide(s, command, policy))


def _appoint(region: Region, key: str, on: date, unit: str, d: st.DataObject) -> Step:
    nurse = d.draw(st.sampled_from([f"SE2321000016-P{region.n}S1", f"SE2321000016-P{region.n}S2"]))
    by = d.draw(st.sampled_from([f"SE2321000016-P{region.n}C", f"SE2321000016-P{region.n}C", "SE2321000016-ZZZ"]))
    command = cmd.AppointFastVardkontakt(patient_key=key, care_unit_id=unit, practitioner_id=nurse,
                                         profession="sjuksköterska", appointed_by_hsa_id=by, effective_date=on)
    return Step("fast_vardkontakt.appoint.v1",
                _command(key, unit, on, practitioner_id=nurse, profession="sjuksköterska", requested_by=by),
                lambda s, policy: decide(s, command, policy))


def _role_ended(region: Region, role_id: str, on: date) -> Step:
    role = region.roles[role_id]
    command = cmd.RecordPractitionerRoleEnded(role_id=role_id, effective_date=on)
    return Step("practitioner_role.ended.v1", {"role_id": role_id, "practitioner_id": role["practitioner_id"],
                                               "care_unit_id": role["care_unit_id"], "ended_on": on.isoformat()},
                lambda s, policy: decide(s, command, policy))


_STATUS = {"deceased": cmd.RecordPersonDeceased, "emigrated": cmd.RecordPersonEmigrated,
           "moved_out_of_region": cmd.RecordPersonMovedOutOfRegion}


def _status(region: Region, key: str, on: date, status: str) -> Step:
    birth, home = region.births()[key]
    data = {"patient_key": key, "id_kind": "personnummer", "birth_date": birth, "region_code": home,
            "status": status, "status_date": on.isoformat(), "updated_at": _rfc3339(on)}
    changed = status != region.status[key]
    region.status[key] = status
    command = _STATUS[status](patient_key=key, effective_date=on) if changed and status in _STATUS else None

    def fact(s: ListingState) -> ListingState:
        """Re-registration is reference data (no domain command); death, emigration and moving out are
        decided, as ``reference.upsert_person`` and ``handle_person`` do."""
        record = s.patients[key]
        if status != "folkbokford" or record.person.population_status is PopulationStatus.FOLKBOKFORD:
            return s
        person = replace(record.person, population_status=PopulationStatus(status))
        return s.with_patient(replace(record, person=person))

    return Step("person.updated.v1", data, (lambda s, policy: decide(s, command, policy)) if command else None, fact)


def _residence(region: Region, key: str, on: date, resident: bool) -> Step:
    residence_id = region.residence.setdefault(key, f"res-{uuid.uuid4().hex[:12]}")
    data = {"residence_id": residence_id, "patient_key": key, "sabo_from": (on - timedelta(days=30)).isoformat(),
            "sabo_to": None if resident else on.isoformat(), "recorded_at": _rfc3339(on)}
    command = cmd.RecordSaboResidence(patient_key=key, effective_date=on, resident=resident)
    return Step("residence.recorded.v1", data, lambda s, policy: decide(s, command, policy))


def draw_step(region: Region, state: ListingState, key: str, on: date, d: st.DataObject, late: bool) -> Step:
    """The next command or fact about ``key``; doctors leave (F8) only ``late`` in an example, so that
    most examples reach several FLKs and a moving coordination first."""
    record = state.patients[key]
    listing = record.open_listing
    here = listing.care_unit_id if listing else None
    unit = d.draw(_weighted((5, st.just(here or region.unit_a)), (2, st.sampled_from([region.unit_a, region.unit_b]))))
    lists_here = sorted(lst.list_id for lst in state.lists.values() if lst.care_unit_id == unit)
    mine = sorted(a.list_id for a in record.open_assignments)
    some_list = d.draw(_weighted((5, st.sampled_from(lists_here or ["none"])), (1, st.sampled_from(sorted(state.lists)))))
    listed = listing is not None
    pending = record.open_pending_listing
    child = key == region.keys[1]
    kind = d.draw(_weighted(
        (3 if listed else 12, st.just("request")),
        (20 if pending else 1, st.just("consent")),
        (2 if pending else 0, st.just("expiry")),
        (1 if child else 0, st.just("guardianship")),
        (12 if listed else 1, st.just("assign")),
        (4 if mine else 0, st.just("end_flk")),
        (1, st.just("end_listing")),
        (1, st.just("decline")),
        (2, st.just("appoint")),
        (1 if late else 0, st.just("role_ended")),
        (2, st.just("residence")),
        (2, st.just("status")),
    ), label="kind")
    if kind == "request":
        return _request(key, on, d.draw(st.sampled_from([region.unit_a, region.unit_b, region.unit_a])), d)
    if kind == "consent":
        target = pending.care_unit_id if pending else unit
        return _consent(key, on, d.draw(_weighted((5, st.just(target)), (1, st.just(region.unit_b)))), d)
    if kind == "expiry":
        return _expiry(region, on)
    if kind == "guardianship":
        return _guardianship(region, key, on, d)
    if kind == "assign":
        return _assign(key, on, unit, some_list, d)
    if kind == "end_flk":
        return _end_flk(key, on, here or unit, d.draw(st.sampled_from(mine)), d)
    if kind == "end_listing":
        return _end_listing(key, on, unit, d)
    if kind == "decline":
        return _decline(key, on, unit)
    if kind == "appoint":
        return _appoint(region, key, on, unit, d)
    if kind == "role_ended":
        return _role_ended(region, d.draw(st.sampled_from(sorted(region.roles))), on)
    if kind == "residence":
        return _residence(region, key, on, d.draw(st.booleans()))
    status = d.draw(_weighted((2, st.just("folkbokford")), (1, st.just("deceased")), (1, st.just("emigrated")),
                              (1, st.just("moved_out_of_region"))))
    return _status(region, key, on, status)


# ---------------------------------------------------------------- the three views, in one shape


def project_record(r: PatientRecord) -> dict[str, list[tuple]]:
    """What a patient's register says, in the shape the stream can say it."""
    return _sorted({
        "listings": [(x.care_unit_id, x.registered_on, x.period.start, x.period.end,
                      x.end_reason.value if x.end_reason else None) for x in r.listings],
        "flk": [(a.list_id, a.care_unit_id, a.practitioner_id, a.period.start, a.period.end,
                 a.end_reason.value if a.end_reason else None, a.coordinating if a.period.is_open else None)
                for a in r.assignments],
        "declines": [(x.care_unit_id, x.period.start, x.period.end) for x in r.declines],
        "fast_vardkontakt": [(v.practitioner_id, v.care_unit_id, v.period.start, v.period.end)
                             for v in r.fast_vardkontakter],
        "pending": [(p.care_unit_id, p.requested_on, p.expires_on, p.closed_on, p.outcome.value if p.outcome else None,
                     tuple(sorted(p.consented_guardian_keys)), tuple(sorted(p.awaiting_guardian_keys)))
                    for p in r.pending_listings],
    })


def _sorted(view: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {name: sorted(rows, key=lambda row: tuple(str(v) for v in row)) for name, rows in view.items()}


async def register_view(conn: asyncpg.Connection, keys: list[str]) -> dict[str, dict]:
    """Every row the SQL writers left, closed history included."""
    views: dict[str, dict[str, list[tuple]]] = {k: {"listings": [], "flk": [], "declines": [], "fast_vardkontakt": [],
                                                    "pending": []} for k in keys}
    for r in await conn.fetch("SELECT * FROM listing.listing WHERE patient_key = ANY($1)", keys):
        views[r["patient_key"]]["listings"].append(
            (r["care_unit_id"], r["registered_on"], r["start_on"], r["end_on"], r["end_reason"]))
    for r in await conn.fetch("SELECT * FROM listing.flk_assignment WHERE patient_key = ANY($1)", keys):
        views[r["patient_key"]]["flk"].append(
            (r["list_id"], r["care_unit_id"], r["practitioner_id"], r["start_on"], r["end_on"], r["end_reason"],
             r["coordinating"] if r["end_on"] is None else None))
    for r in await conn.fetch("SELECT * FROM listing.flk_decline WHERE patient_key = ANY($1)", keys):
        views[r["patient_key"]]["declines"].append((r["care_unit_id"], r["start_on"], r["end_on"]))
    for r in await conn.fetch("SELECT * FROM listing.fast_vardkontakt WHERE patient_key = ANY($1)", keys):
        views[r["patient_key"]]["fast_vardkontakt"].append(
            (r["practitioner_id"], r["care_unit_id"], r["start_on"], r["end_on"]))
    for r in await conn.fetch("SELECT * FROM listing.pending_listing WHERE patient_key = ANY($1)", keys):
        views[r["patient_key"]]["pending"].append(
            (r["care_unit_id"], r["requested_on"], r["expires_on"], r["closed_on"], r["outcome"],
             tuple(sorted(r["consented_guardian_keys"])), tuple(sorted(r["awaiting_guardian_keys"]))))
    return {k: _sorted(v) for k, v in views.items()}


def stream_view(events: list[tuple[str, dict]], keys: list[str]) -> dict[str, dict]:
    """Fold the published events as a downstream consumer does, with nothing but the contracts."""
    open_: dict[str, dict[str, list[dict]]] = {k: {"listings": [], "flk": [], "declines": [], "fast_vardkontakt": [],
                                                   "pending": []} for k in keys}
    d_ = date.fromisoformat

    def close(rows: list[dict], match: Callable[[dict], bool], on: date, **extra: Any) -> None:
        for row in rows:
            if row["end"] is None and match(row):
                row.update(end=max(on, row["start"]), **extra)

    for event_type, data in events:
        p = open_[data["patient_key"]]
        if event_type == "listing.started.v1":
            p["listings"].append({"unit": data["care_unit_id"], "registered": d_(data["started_on"]),
                                  "start": d_(data["responsibility_from"]), "end": None, "reason": None})
        elif event_type == "listing.ended.v1":
            on = d_(data["ended_on"])
            close(p["listings"], lambda r: r["unit"] == data["care_unit_id"], on, reason=data["reason"])
            close(p["declines"], lambda r: r["unit"] == data["care_unit_id"], on)  # F7 ends with the listing
        elif event_type == "fast_lakarkontakt.assigned.v1":
            on = d_(data["assigned_on"])
            close(p["declines"], lambda r: r["unit"] == data["care_unit_id"], on)  # F7 ends with an FLK there
            p["flk"].append({"list": data["list_id"], "unit": data["care_unit_id"], "doctor": data["practitioner_id"],
                             "start": on, "end": None, "reason": None, "coordinating": data["coordinating"]})
        elif event_type == "fast_lakarkontakt.ended.v1":
            close(p["flk"], lambda r: r["list"] == data["list_id"], d_(data["ended_on"]), reason=data["reason"])
        elif event_type == "fast_lakarkontakt.coordinating_changed.v1":
            for row in p["flk"]:
                if row["end"] is None:
                    row["coordinating"] = row["list"] == data["list_id"]
        elif event_type == "fast_lakarkontakt.declined.v1":
            p["declines"].append({"unit": data["care_unit_id"], "start": d_(data["declined_on"]), "end": None})
        elif event_type == "fast_vardkontakt.appointed.v1":
            p["fast_vardkontakt"].append({"who": data["practitioner_id"], "unit": data["care_unit_id"],
                                          "start": d_(data["appointed_on"]), "end": None})
        elif event_type == "fast_vardkontakt.ended.v1":
            close(p["fast_vardkontakt"],
                  lambda r: r["who"] == data["practitioner_id"] and r["unit"] == data["care_unit_id"],
                  d_(data["ended_on"]))
        elif event_type == "listing.awaiting_consent.v1":  # P3: opens, or (announced again) updates, the open one
            sets = {"consented": tuple(sorted(data["consented_guardian_keys"])),
                    "awaiting": tuple(sorted(data["awaiting_guardian_keys"]))}
            current = next((r for r in p["pending"] if r["end"] is None), None)
            if current is not None and (current["unit"], current["requested"]) == (
                    data["care_unit_id"], d_(data["requested_on"])):
                current.update(sets)
            else:
                p["pending"].append({"unit": data["care_unit_id"], "requested": d_(data["requested_on"]),
                                     "expires": d_(data["expires_on"]), "end": None, "outcome": None, **sets})
        elif event_type == "listing.consent_closed.v1":
            for row in p["pending"]:
                if row["end"] is None:
                    row.update(end=d_(data["closed_on"]), outcome=data["outcome"])
    return {k: _sorted({
        "listings": [(r["unit"], r["registered"], r["start"], r["end"], r["reason"]) for r in p["listings"]],
        "flk": [(r["list"], r["unit"], r["doctor"], r["start"], r["end"], r["reason"],
                 r["coordinating"] if r["end"] is None else None) for r in p["flk"]],
        "declines": [(r["unit"], r["start"], r["end"]) for r in p["declines"]],
        "fast_vardkontakt": [(r["who"], r["unit"], r["start"], r["end"]) for r in p["fast_vardkontakt"]],
        "pending": [(r["unit"], r["requested"], r["expires"], r["end"], r["outcome"], r["consented"], r["awaiting"])
                    for r in p["pending"]],
    }) for k, p in open_.items()}


# ---------------------------------------------------------------- the service around the examples


class Clock:
    def __init__(self) -> None:
        self.now = datetime.combine(START, time(10), timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@dataclass(repr=False)
class Service:
    loop: asyncio.AbstractEventLoop
    pool: Any
    producer: Any
    consumer: Any
    settings: PlatformSettings
    seen: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)  # patient key → its events, in order


@pytest.fixture
def service(migrated_database: str, kafka_bootstrap: str, topic_prefix: str) -> Iterator[Service]:
    """Its own event loop (hypothesis drives a synchronous test), a pool, a producer for the relay and
    one consumer that reads ``listing.events.v1`` from its start for the whole test."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from flk.events.producer import new_producer

    loop = asyncio.new_event_loop()
    topic = topic_prefix + registry().topic_for("listing.started.v1").name

    async def open_() -> Service:
        pool = await asyncpg.create_pool(migrated_database, min_size=1, max_size=4)
        producer = new_producer(kafka_bootstrap, client_id="stream-property")
        await producer.start()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        platform = PlatformSettings(database_url=migrated_database, kafka_bootstrap=kafka_bootstrap,
                                    topic_prefix=topic_prefix, jwt_verify_key="stream-property-0123456789abcdef")
        return Service(loop, pool, producer, consumer, platform)

    svc = loop.run_until_complete(open_())
    try:
        yield svc
    finally:
        async def close() -> None:
            await svc.consumer.stop()
            await svc.producer.stop()
            await svc.pool.close()

        loop.run_until_complete(close())
        loop.close()


async def _read_stream(svc: Service, keys: list[str], expected: int, timeout_s: float = 30.0) -> list[tuple[str, dict]]:
    deadline = svc.loop.time() + timeout_s
    while sum(len(svc.seen.get(k, ())) for k in keys) < expected and svc.loop.time() < deadline:
        batches = await svc.consumer.getmany(timeout_ms=300)
        for records in batches.values():
            for r in records:
                envelope = read_record(r.topic.removeprefix(svc.settings.topic_prefix), r.key, r.value, r.headers)
                svc.seen.setdefault(envelope.data.get("patient_key", ""), []).append(
                    (envelope.event_type, envelope.data))
    return [e for k in keys for e in svc.seen.get(k, ())]


async def handle(deps: Any, message_type: str, data: dict, now: datetime) -> Any:
    """As the consumers and the REST API do: valid against its contract, then the dispatch."""
    make_record(message_type, data, source="urn:test:stream-property")  # raises on a contract violation
    return await handle_message(Message(data.get("command_id") or str(uuid.uuid4()), message_type, data, now), deps)


def _answer(events: list[ev.Event]) -> tuple[str, str | None]:
    rejection = next((e for e in events if isinstance(e, REJECTIONS)), None)
    return ("rejected", rejection.reason.value) if rejection else ("accepted", None)


async def run_example(svc: Service, profile: str, d: st.DataObject) -> None:
    region = Region(next(_serial))
    region.guardians = d.draw(st.sampled_from([None, [GUARDIAN_1, GUARDIAN_2], [GUARDIAN_1, GUARDIAN_2], [GUARDIAN_1]]),
                              label="the child's guardians in the register")
    clock = Clock()
    deps = build_deps(ListingSettings(platform=svc.settings, profile=profile), svc.pool, clock=clock)
    for event_type, data in _facts(region, d.draw(st.sampled_from([None, None, 2]), label="listing limit at A")):
        await handle(deps, event_type, data, clock.now)

    async with svc.pool.acquire() as conn:  # the world as the register holds it before the first command
        repo = ListingRepository(conn)
        units = await repo.load_units([region.unit_a, region.unit_b])
        list_ids = [r["list_id"] for r in await conn.fetch(
            "SELECT list_id FROM listing.doctor_list WHERE care_unit_id = ANY($1) ORDER BY list_id",
            [region.unit_a, region.unit_b])]
        lists, roles = {}, {}
        for list_id in list_ids:
            doctor_list, role, _ = await repo.load_list(list_id)
            lists[list_id] = doctor_list
            if role is not None:
                roles[role.role_id] = role
        for role_id, role in region.roles.items():
            roles.update({r.role_id: r for r in await repo.roles_of_practitioner(role["practitioner_id"])})
        patients = await repo.load_patients(region.keys, START - timedelta(days=800))
    state = ListingState(patients=patients, units=units, roles=roles, lists=lists)

    on = START
    for step_no in range(d.draw(st.integers(1, 30), label="steps")):
        waiting = [k for k in region.keys if state.patients[k].open_pending_listing is not None]
        # a request waiting for consent (P3, 30 days) is answered soon more often than not
        on += timedelta(days=d.draw(_weighted((1, st.integers(0, 45)), (2 if waiting else 0, st.integers(0, 10))),
                                    label="days to the next step"))
        clock.now = datetime.combine(on, time(10), timezone.utc)
        key = d.draw(_weighted((3, st.sampled_from(region.keys)), (2 if waiting else 0, st.sampled_from(waiting or [""]))),
                     label="patient")
        step = draw_step(region, state, key, on, d, late=step_no >= 15)
        note(f"step {step_no} on {on}: patient #{region.keys.index(key)} {step.message_type} "
             f"{ {k: v for k, v in step.data.items() if k not in ('command_id', 'patient_key', 'requested_at')} }")
        state = step.fact(state) if step.fact is not None else state
        outcome = await (step.run(deps, clock.now) if step.run is not None
                         else handle(deps, step.message_type, step.data, clock.now))
        events = step.pure(state, profile_for(profile, on)) if step.pure is not None else []
        for e in events:  # hypothesis' statistics: which transitions and rejections the examples reached
            event(f"{type(e).__name__} {e.reason.value}" if isinstance(e, REJECTIONS)
                  else f"{type(e).__name__} {e.outcome.value}" if isinstance(e, ev.ListingConsentClosed)
                  else type(e).__name__)
        if step.run is not None:  # the sweep: how many requests it expired (earlier examples' too: one database)
            note(f"  domain: {[type(e).__name__ for e in events]}; service: {outcome} expired")
            assert outcome >= sum(isinstance(e, ev.ListingConsentClosed) for e in events), f"step {step_no} sweep"
            state = evolve_all(state, events)
            continue
        note(f"  domain: {[type(e).__name__ for e in events]}; service: {outcome.status} "
             f"{[e['type'] for e in outcome.events]}")
        if step.message_type.endswith((".request.v1", ".end.v1", ".assign.v1", ".decline.v1", ".appoint.v1",
                                       ".consent.v1")):
            got = (outcome.status, (outcome.rejection or {}).get("reason_code"))
            assert got == _answer(events), f"step {step_no} {step.message_type}: service {got}, domain {events}"
        state = evolve_all(state, events)

    relay = listing_relay(svc.pool, svc.producer, "urn:test:stream-property", svc.settings.topic_prefix)
    await relay.publish_all()
    async with svc.pool.acquire() as conn:
        expected = await conn.fetchval(
            "SELECT count(*) FROM listing.outbox WHERE data->>'patient_key' = ANY($1)", region.keys)
        register = await register_view(conn, region.keys)
    published = await _read_stream(svc, region.keys, expected)
    assert len(published) == expected, "every outbox row of the example reaches listing.events.v1"

    stream = stream_view(published, region.keys)
    evolved = {k: project_record(state.patients[k]) for k in region.keys}
    for key in region.keys:
        who = f"patient #{region.keys.index(key)}"
        assert register[key] == evolved[key], f"register vs evolve, {who}:\n{register[key]}\n{evolved[key]}"
        assert stream[key] == register[key], f"stream vs register, {who}:\n{stream[key]}\n{register[key]}"


@settings(max_examples=EXAMPLES, deadline=None, phases=PHASES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(profile=st.sampled_from(PROFILES), data=st.data())
def test_the_register_the_published_stream_and_evolve_agree_after_any_command_sequence(
        service: Service, profile: str, data: st.DataObject) -> None:
    service.loop.run_until_complete(run_example(service, profile, data))
