"""The listing service's HTTP API (contracts: /tmp/brief/contracts.md, README "Listing service").

* ``POST /commands/{command_type}`` — a contract command; the body is exactly the contract's data
  (``schemas/events/<type>.json``); the same handlers as the Kafka consumer, so ``command_id``
  makes it idempotent across both. 200 accepted / 409 rejected (rule id, Swedish and English) /
  422 invalid / 403 not your unit.
* ``GET /units/{unit_id}/lists`` — doctor and fictive lists with size, capacity, free capacity and
  RUB-weighted load.
* ``GET /patients/{patient_key}`` and ``.../history`` — own unit's patients only (404 otherwise),
  every read audit-logged.
* ``GET /me/fast-lakarkontakt`` — the 1177 patient view: never a fictive list (F3), ids and the
  unit's and doctor's list names only (P2); a listing request of the caller waiting for a guardian's
  consent, and the children's requests waiting for the caller's own consent as their guardian (P3).

Plus ``/healthz``, ``/readyz`` (flk.api) and ``/metrics``.
"""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from flk.api import install_platform, keep_session, open_pool, platform_lifespan
from services.listing.adapters.backlog import listing_backlog
from flk.events.contracts import ContractViolation, contracts
from flk.security.access import REGION_WIDE, UNIT_STAFF
from flk.security.audit import AuditRecord, GroupCommitAuditLog
from flk.security.fastapi import AccessGuard, access_guard
from flk.security.pseudonym import is_patient_key
from flk.security.tokens import Principal, Role
from services.listing.adapters import read_model
from services.listing.adapters.metrics import PrometheusListingProbe
from services.listing.domain.capacity import capacity_for
from services.listing.domain.views import patient_view
from services.listing.service_layer.dispatch import handle_message
from services.listing.service_layer.handlers import COMMAND_HANDLERS, InvalidMessage, Message, Outcome
from services.listing.settings import ListingSettings

PatientKey = Annotated[str, Path(pattern=r"^pk1_[a-z2-7]{26}$", description="pseudonymous patient key")]
UnitId = Annotated[str, Path(pattern=r"^SE[0-9]{10}-[0-9A-Za-z]{1,31}$", max_length=44, description="HSA-id")]

#: commands a patient may send about themselves (the 1177 e-service)
PATIENT_COMMANDS = frozenset({"listing.request.v1", "listing.end.v1", "fast_lakarkontakt.decline.v1"})
#: commands a guardian sends about their child with their own patient token: the token's key must be
#: the command's ``guardian_key`` (whether they are the child's guardian is the population register's
#: fact, checked by the rule: P3 ``consent_by_non_guardian``)
GUARDIAN_COMMANDS = frozenset({"listing.consent.v1"})


@cache
def command_body_schema(command_type: str) -> dict:
    """The contract schema with its shared $refs inlined (self-contained, for OpenAPI 3.1)."""
    c = contracts()

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                uri, _, pointer = ref.partition("#")
                target: Any = c.shared[uri if uri.startswith("https") else c.schema(command_type)["$id"].rsplit("/", 1)[0] + "/" + uri]
                for part in filter(None, pointer.split("/")):
                    target = target[part]
                merged = {**inline(copy.deepcopy(target)), **{k: inline(v) for k, v in node.items() if k != "$ref"}}
                return merged
            return {k: inline(v) for k, v in node.items() if k not in ("$schema", "$id", "x-cloudevents-type")}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(copy.deepcopy(c.schema(command_type)))


def may_command(principal: Principal, command_type: str, data: dict) -> bool:
    if principal.role in REGION_WIDE:
        return True
    if principal.role in UNIT_STAFF:
        return data.get("care_unit_id") in principal.units
    if principal.role is Role.PATIENT:
        if command_type in GUARDIAN_COMMANDS:
            return bool(principal.patient_key) and data.get("guardian_key") == principal.patient_key
        return command_type in PATIENT_COMMANDS and data.get("patient_key") == principal.patient_key
    return False


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _answer(outcome: Outcome) -> JSONResponse:
    body: dict[str, Any] = {"status": outcome.status, "command_id": outcome.message_id,
                            "replayed": outcome.replayed, "decided_under": outcome.decided_under}
    if outcome.status == "rejected":
        body["rejection"] = outcome.rejection
        return JSONResponse(status_code=409, content=body)
    body["events"] = outcome.events
    return JSONResponse(body)


def create_app(settings: ListingSettings, *, run_workers: bool = True) -> FastAPI:
    """The app; with ``run_workers`` its lifespan also runs the Kafka consumers and the outbox relay."""
    metrics_registry = CollectorRegistry()
    probe = PrometheusListingProbe(metrics_registry)

    async def start(app: FastAPI):
        from flk.tasks import Wakeup
        from services.listing.bootstrap import ListingRuntime, build_deps, observe_decisions

        app.state.listing_settings = settings
        # concurrent requests' audit records share one write (each request still waits for its own)
        app.state.audit_log = GroupCommitAuditLog(app.state.db)
        wake = Wakeup()
        app.state.runtime = None
        if not run_workers:
            app.state.deps = build_deps(settings, app.state.db, observe_decisions(probe))
            return None
        from flk.events.producer import new_producer
        from flk.observability.metrics import PrometheusConsumerProbe

        worker_pool = await open_pool(settings.platform, max_size=settings.pool_size)
        producer = new_producer(settings.platform.kafka_bootstrap, client_id="listing",
                                connection=settings.platform.kafka_connection())
        await producer.start()
        runtime = ListingRuntime(settings, worker_pool, producer, probe, PrometheusConsumerProbe(metrics_registry),
                                 relay_wake=wake)
        await runtime.start()
        app.state.runtime = runtime
        app.state.deps = build_deps(settings, app.state.db, observe_decisions(probe, wake))

        async def close() -> None:
            await runtime.stop()
            await producer.stop()
            await worker_pool.close()

        return close

    # The API's pool: reads, audit inserts and the command handlers' transactions, no session state
    # (so no reset query on release). Its statements are all short index lookups run thousands of
    # times: generic plans, planned once per connection (measured: the patient read costs PostgreSQL
    # ~0.2 ms of CPU instead of ~0.6-0.9 ms re-planning it each time).
    api_pool = {"max_size": settings.api_pool_size, "reset": keep_session,
                "server_settings": {"plan_cache_mode": "force_generic_plan"}}
    app = FastAPI(title="flk listing", version="1", lifespan=platform_lifespan(settings.platform, start, api_pool),
                  description="The listing register and fast läkarkontakt rules (rule ids L1–P3).")
    install_platform(app, settings.platform, backlog=lambda app: listing_backlog(app.state.db))
    app.state.probe = probe

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ commands
    async def run_command(command_type: str, request: Request, guard: AccessGuard) -> JSONResponse:
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return JSONResponse(status_code=422, content={"error": "invalid_body", "detail": "the body is not JSON"})
        try:
            contracts().validate(command_type, data)
        except ContractViolation as exc:
            return JSONResponse(status_code=422, content={"error": "invalid_command", "detail": str(exc)})
        allowed = may_command(guard.principal, command_type, data)
        await guard.audit.record(AuditRecord(
            guard.principal, f"listing.command.{command_type}", "allowed" if allowed else "denied",
            unit_id=data.get("care_unit_id"), patient_key=data.get("patient_key"), request_id=guard.request_id))
        if not allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="your token does not allow this command for this unit")
        msg = Message(str(data["command_id"]), command_type, data, datetime.now(timezone.utc))
        try:
            outcome = await handle_message(msg, request.app.state.deps, probe, settings.conflict_retries,
                                           COMMAND_HANDLERS)
        except InvalidMessage as exc:
            return JSONResponse(status_code=422, content={"error": "invalid_command", "detail": str(exc)})
        return _answer(outcome)

    def add_command_route(command_type: str) -> None:
        async def command(request: Request, guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
            return await run_command(command_type, request, guard)

        app.post(
            f"/commands/{command_type}", operation_id=f"command_{command_type.replace('.', '_')}",
            summary=f"Command {command_type}", tags=["commands"],
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": command_body_schema(command_type)}}}},
            responses={200: {"description": "accepted: the events it caused"},
                       409: {"description": "rejected by a rule: reason_code, rule_id, message_sv, message_en"},
                       422: {"description": "the body is not a valid command (what was wrong in detail)"},
                       403: {"description": "the token does not act for this unit"}},
        )(command)

    for command_type in COMMAND_HANDLERS:
        add_command_route(command_type)

    @app.post("/commands/{command_type}", tags=["commands"], include_in_schema=False)
    async def unknown_command(command_type: str) -> JSONResponse:
        return JSONResponse(status_code=404, content={
            "error": "unknown_command_type", "detail": f"known command types: {', '.join(COMMAND_HANDLERS)}"})

    # ------------------------------------------------------------------ reads
    def today():
        return settings.today()

    @app.get("/units/{unit_id}/lists", tags=["units"])
    async def unit_lists(unit_id: UnitId, request: Request,
                         guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
        """The unit's doctor and fictive lists: size, capacity (individual number, else 550 × FTE for
        an ST-läkare, else 1 100 × FTE, F6), free capacity and RUB-weighted load."""
        await guard.unit("listing.unit.lists.read", unit_id, always_audit=True)
        pool = request.app.state.db
        async with pool.acquire() as conn:
            unit = await read_model.unit(conn, unit_id)
            if unit is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such care unit")
            rows = await read_model.unit_lists(conn, unit_id)
        policy = request.app.state.deps.policy(today())
        weights = settings.rub_weights
        lists = []
        for row in rows:
            mix = {str(b): row[f"rub_{b}"] for b in range(6)} | {"unknown": row["rub_unknown"]}
            weighted = sum(weights[b] * row[f"rub_{b}"] for b in range(6)) + settings.rub_unknown_weight * row["rub_unknown"]
            role = read_model.role_of(row)
            capacity = capacity_for(role, policy) if row["kind"] == "doctor" and role is not None else None
            cap = capacity.patients if capacity is not None else None
            lists.append({
                "list_id": row["list_id"], "kind": row["kind"], "display_name": row["display_name"],
                "practitioner_id": row["practitioner_id"] if row["kind"] == "doctor" else None,
                "role_active": bool(role is not None and role.is_active_on(today())),
                "size": row["size"], "capacity": cap,
                "capacity_basis": capacity.basis.value if capacity is not None else None,
                "free_capacity": cap - row["size"] if cap is not None else None,
                "load": round(row["size"] / cap, 4) if cap else None,
                "rub_mix": mix, "rub_weighted_size": round(weighted, 2),
                "rub_weighted_load": round(weighted / cap, 4) if cap else None,
            })
        return JSONResponse({
            "care_unit_id": unit_id, "name": unit["name"], "region_code": unit["region_code"],
            "listed": unit["listed"], "decided_under": policy.ref,
            "rub_weights": {str(k): v for k, v in weights.items()}, "lists": lists,
        })

    async def _guarded_record(request: Request, guard: AccessGuard, patient_key: str, action: str):
        if not is_patient_key(patient_key):
            raise HTTPException(422,
                                detail="patient_key must be a pseudonymous key (pk1_…), never a person id")
        async with request.app.state.db.acquire() as conn:
            record, state = await read_model.current_record(conn, patient_key, today())
        await guard.patient(action, patient_key, read_model.responsible_unit(record, today()))
        return record, state

    @app.get("/patients/{patient_key}", tags=["patients"])
    async def patient(patient_key: PatientKey, request: Request,
                      guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
        """The patient's current listing, fast läkarkontakter (incl. fictive placements, marked) and
        fast vårdkontakter. Own unit's patients only; audit-logged."""
        record, state = await _guarded_record(request, guard, patient_key, "listing.patient.read")
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such patient among your unit's patients")
        on = today()
        listing = next((lst for lst in record.listings if lst.period.contains(on)), None) or record.open_listing
        person = record.person
        return JSONResponse({
            "patient_key": patient_key,
            "population_status": person.population_status.value,
            "protected_identity": person.protected_identity,
            "sabo_resident": person.sabo_resident,
            "listing": None if listing is None else {
                "care_unit_id": listing.care_unit_id, "registered_on": listing.registered_on.isoformat(),
                "responsibility_from": listing.period.start.isoformat(),
                "ended_on": listing.period.end.isoformat() if listing.period.end else None,
                "origin": listing.origin.value, "channel": listing.channel.value,
                "initiated_by": listing.initiated_by.value},
            "fast_lakarkontakter": [{
                "list_id": a.list_id, "kind": a.list_kind.value, "care_unit_id": a.care_unit_id,
                "display_name": lst.display_name if (lst := state.lists.get(a.list_id)) else None,
                "practitioner_id": a.practitioner_id, "coordinating": a.coordinating,
                "assigned_on": a.period.start.isoformat(), "named": a.list_kind.value == "doctor",
            } for a in record.open_assignments],
            "declined_fast_lakarkontakt": bool(record.open_declines),
            "pending_listing": None if (p := record.open_pending_listing) is None else {  # P3
                "care_unit_id": p.care_unit_id, "requested_on": p.requested_on.isoformat(),
                "expires_on": p.expires_on.isoformat(), "consented_guardian_keys": sorted(p.consented_guardian_keys),
                "awaiting_guardian_keys": sorted(p.awaiting_guardian_keys)},
            "fast_vardkontakter": [{
                "practitioner_id": v.practitioner_id, "profession": v.profession, "care_unit_id": v.care_unit_id,
                "appointed_on": v.period.start.isoformat()} for v in record.open_fast_vardkontakter],
        })

    @app.get("/patients/{patient_key}/history", tags=["patients"])
    async def patient_history(patient_key: PatientKey, request: Request,
                              guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
        """Every listing, switch, FLK assignment, decline and fast vårdkontakt, with end reasons."""
        record, _ = await _guarded_record(request, guard, patient_key, "listing.patient.history.read")
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such patient among your unit's patients")
        async with request.app.state.db.acquire() as conn:
            body = await read_model.history(conn, patient_key)
        return JSONResponse(json.loads(json.dumps({"patient_key": patient_key, **body}, default=_json_default)))

    @app.get("/me/fast-lakarkontakt", tags=["1177"])
    async def my_fast_lakarkontakt(request: Request,
                                   guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
        """The 1177 patient view ("who is my fast läkarkontakt"): never a fictive list (F3); ids, the
        unit's name and the doctors' list names only (P2). Patient tokens only."""
        principal = guard.principal
        if principal.role is not Role.PATIENT or not principal.patient_key:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this view is for a patient token (1177)")
        record, state = await _guarded_record(request, guard, principal.patient_key, "listing.patient_view.read")
        on = today()
        async with request.app.state.db.acquire() as conn:
            children = await read_model.awaiting_guardian(conn, principal.patient_key, on)
        for child in children:  # the guardian reads the child's pending request: audited under the child
            await guard.audit.record(AuditRecord(principal, "listing.guardian_view.read", "allowed",
                                                 unit_id=child["care_unit_id"], patient_key=child["patient_key"],
                                                 request_id=guard.request_id))
        awaiting_my_consent = [{
            "patient_key": c["patient_key"], "care_unit_id": c["care_unit_id"], "care_unit_name": c["care_unit_name"],
            "requested_on": c["requested_on"].isoformat(), "expires_on": c["expires_on"].isoformat(),
            "status": "awaiting_your_consent"} for c in children]
        if record is None:
            return JSONResponse({"care_unit_id": None, "care_unit_name": None, "fast_lakarkontakter": [],
                                 "fast_vardkontakter": [], "declined_fast_lakarkontakt": False,
                                 "pending_listing": None, "awaiting_my_consent": awaiting_my_consent})
        view = patient_view(record, state, on)
        pending = view.pending_listing
        return JSONResponse({
            "care_unit_id": view.care_unit_id,
            "care_unit_name": view.unit_display_name,
            "fast_lakarkontakter": [{"practitioner_id": f.practitioner_id, "display_name": f.list_display_name,
                                     "coordinating": f.coordinating} for f in view.fast_lakarkontakter],
            "fast_vardkontakter": [{"practitioner_id": v.practitioner_id, "profession": v.profession}
                                   for v in view.fast_vardkontakter],
            "declined_fast_lakarkontakt": view.declined_fast_lakarkontakt,
            # P3: a listing of the caller (a child) that waits for a guardian's consent
            "pending_listing": None if pending is None else {
                "care_unit_id": pending.care_unit_id, "care_unit_name": pending.unit_display_name,
                "requested_on": pending.requested_on.isoformat(), "expires_on": pending.expires_on.isoformat(),
                "status": "awaiting_guardian_consent", "awaiting_guardians": pending.awaiting_guardians},
            # P3: the caller's children whose listing waits for the caller's consent as their guardian
            "awaiting_my_consent": awaiting_my_consent,
        })

    return app
