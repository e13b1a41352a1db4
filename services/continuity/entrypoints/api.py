"""HTTP API: a patient's current indices and a unit's aggregates (live, from the worker's tables).

Every patient read goes through the access guard (audit-logged, allowed or denied); the
patient's *listing unit* decides access, and another unit's staff get 404 (not 403), so a
unit cannot learn that someone else's patient exists.
"""
from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flk.api import install_platform, platform_lifespan
from flk.security.fastapi import AccessGuard, access_guard
from services.continuity.settings import ContinuityServiceSettings


class IndexReader(Protocol):
    """What the API reads (the worker's processor)."""

    as_of: object

    def patient(self, patient_key: str): ...
    def unit_aggregates(self, unit_id: str): ...


def create_app(settings: ContinuityServiceSettings, reader: IndexReader) -> FastAPI:
    app = FastAPI(title="flk continuity", lifespan=platform_lifespan(settings.platform))
    install_platform(app)

    @app.get("/patients/{patient_key}/continuity")
    async def patient_continuity(patient_key: str, guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        found = reader.patient(patient_key)
        unit = found[0].state.listing_unit_id if found else None
        await guard.patient("continuity.patient.read", patient_key, unit, purpose="uppfoljning")
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such patient among your unit's patients")
        record, indices = found
        return {"patient_key": patient_key, "care_unit_id": unit, "sabo": record.sabo_on(indices.as_of),
                **indices.to_json_dict()}

    @app.get("/units/{unit_id}/continuity")
    async def unit_continuity(unit_id: str, guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        await guard.unit("continuity.unit.read", unit_id)
        rows = reader.unit_aggregates(unit_id)
        return {"care_unit_id": unit_id, "as_of": reader.as_of.isoformat(),
                "aggregates": [r.to_json_dict() for r in rows]}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
