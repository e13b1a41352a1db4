"""The listing API's reads: a unit's lists, a patient's record and history (own unit's patients only,
every read audit-logged), and the 1177 patient view ``/me/fast-lakarkontakt``."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse

from flk.security.audit import AuditRecord
from flk.security.fastapi import AccessGuard, access_guard
from flk.security.pseudonym import is_patient_key
from flk.security.tokens import Role
from services.listing.adapters import read_model
from services.listing.domain.capacity import capacity_for
from services.listing.domain.views import patient_view

router = APIRouter()

PatientKey = Annotated[str, Path(pattern=r"^pk1_[a-z2-7]{26}$", description="pseudonymous patient key")]
UnitId = Annotated[str, Path(pattern=r"^SE[0-9]{10}-[0-9A-Za-z]{1,31}$", max_length=44, description="HSA-id")]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def today(request: Request):
    return request.app.state.listing_settings.today()


@router.get("/units/{unit_id}/lists", tags=["units"])
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
    policy = request.app.state.deps.policy(today(request))
    weights = request.app.state.listing_settings.rub_weights
    lists = []
    for row in rows:
        mix = {str(b): row[f"rub_{b}"] for b in range(6)} | {"unknown": row["rub_unknown"]}
        weighted = sum(weights[b] * row[f"rub_{b}"] for b in range(6)) + request.app.state.listing_settings.rub_unknown_weight * row["rub_unknown"]
        role = read_model.role_of(row)
        capacity = capacity_for(role, policy) if row["kind"] == "doctor" and role is not None else None
        cap = capacity.patients if capacity is not None else None
        lists.append({
            "list_id": row["list_id"], "kind": row["kind"], "display_name": row["display_name"],
            "practitioner_id": row["practitioner_id"] if row["kind"] == "doctor" else None,
            "role_active": bool(role is not None and role.is_active_on(today(request))),
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
        record, state = await read_model.current_record(conn, patient_key, today(request))
    await guard.patient(action, patient_key, read_model.responsible_unit(record, today(request)))
    return record, state


@router.get("/patients/{patient_key}", tags=["patients"])
async def patient(patient_key: PatientKey, request: Request,
                  guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
    """The patient's current listing, fast läkarkontakter (incl. fictive placements, marked) and
    fast vårdkontakter. Own unit's patients only; audit-logged."""
    record, state = await _guarded_record(request, guard, patient_key, "listing.patient.read")
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such patient among your unit's patients")
    on = today(request)
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


@router.get("/patients/{patient_key}/history", tags=["patients"])
async def patient_history(patient_key: PatientKey, request: Request,
                          guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
    """Every listing, switch, FLK assignment, decline and fast vårdkontakt, with end reasons."""
    record, _ = await _guarded_record(request, guard, patient_key, "listing.patient.history.read")
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such patient among your unit's patients")
    async with request.app.state.db.acquire() as conn:
        body = await read_model.history(conn, patient_key)
    return JSONResponse(json.loads(json.dumps({"patient_key": patient_key, **body}, default=_json_default)))


@router.get("/me/fast-lakarkontakt", tags=["1177"])
async def my_fast_lakarkontakt(request: Request,
                               guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
    """The 1177 patient view ("who is my fast läkarkontakt"): never a fictive list (F3); ids, the
    unit's name and the doctors' list names only (P2). Patient tokens only."""
    principal = guard.principal
    if principal.role is not Role.PATIENT or not principal.patient_key:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this view is for a patient token (1177)")
    record, state = await _guarded_record(request, guard, principal.patient_key, "listing.patient_view.read")
    on = today(request)
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
