"""HTTP API: a patient's current indices and a unit's aggregates (live, from the worker's tables); the
region's goal comparison (G2/G4, from the snapshots in PostgreSQL) and its data coverage.

Every patient read goes through the access guard (audit-logged, allowed or denied); the
patient's *listing unit* decides access, and another unit's staff get 404 (not 403), so a
unit cannot learn that someone else's patient exists.
"""
from __future__ import annotations

from datetime import date
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from prometheus_client import CollectorRegistry

from flk.api import install_platform, platform_lifespan
from flk.security.access import may_read_unit
from flk.security.fastapi import AccessGuard, access_guard
from services.continuity.settings import ContinuityServiceSettings


class IndexReader(Protocol):
    """What the API reads (the worker's processor)."""

    as_of: object

    def known_until(self) -> date | None: ...
    def patient(self, patient_key: str): ...  # may raise NotServedHere (a LookupError with .partition)
    def unit_aggregates(self, unit_id: str): ...


def create_app(settings: ContinuityServiceSettings, reader: IndexReader,
               metrics: CollectorRegistry | None = None) -> FastAPI:
    """The API over a worker's tables (``reader``); ``/metrics`` serves the worker's registry."""
    app = FastAPI(title="flk continuity", lifespan=platform_lifespan(settings.platform))
    install_platform(app, settings.platform, metrics=metrics)

    @app.get("/patients/{patient_key}/continuity")
    async def patient_continuity(patient_key: str, guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        try:
            found = reader.patient(patient_key)
        except LookupError as exc:  # NotServedHere: another replica owns the patient's partition
            # audited like any read of an unknown patient (a unit's staff: denied, its listing unit is not
            # known here); the answer is the same for every caller: the partition is a hash of the key,
            # so naming it tells nothing about the patient, and a router needs it to find the owner
            try:
                await guard.patient("continuity.patient.read", patient_key, None, purpose="uppfoljning")
            except HTTPException:
                pass
            partition = getattr(exc, "partition", None)
            raise HTTPException(status.HTTP_404_NOT_FOUND, headers={"X-FLK-Partition": str(partition)},
                                detail=f"partition {partition} is not served by this replica") from None
        unit = found[0].state.listing_unit_id if found else None
        await guard.patient("continuity.patient.read", patient_key, unit, purpose="uppfoljning")
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such patient among your unit's patients")
        record, indices = found
        return {"patient_key": patient_key, "care_unit_id": unit, "sabo": record.sabo_on(indices.as_of),
                "sabo_cohort": record.sabo_cohort_on(indices.as_of),
                "rub": record.rub, "rub45": record.rub45(), **indices.to_json_dict()}

    @app.get("/units/{unit_id}/continuity")
    async def unit_continuity(unit_id: str, guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        await guard.unit("continuity.unit.read", unit_id)
        try:
            rows = reader.unit_aggregates(unit_id)
        except LookupError:  # a serving replica (follower.py): a unit's patients are in every partition
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                detail="this replica serves patients only; a unit's aggregates come from the worker") from None
        return {"care_unit_id": unit_id, "as_of": reader.as_of.isoformat(),
                "aggregates": [r.to_json_dict() for r in rows]}

    @app.get("/status", include_in_schema=False)  # an operator's probe, like /healthz: no data behind it
    async def worker_status() -> dict:
        """The day the indices are computed as of, and the latest fact date the state holds (a snapshot
        of a day before that is not written from this state)."""
        known = reader.known_until()
        served = getattr(reader, "served_partitions", None)
        return {"region_code": settings.region_id, "as_of": reader.as_of.isoformat(),
                "known_until": known.isoformat() if known else None,
                "replica": settings.platform.replica_name,
                "partitions": served() if served is not None else None}

    def _this_region(region_code: str) -> None:
        if region_code != settings.region_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                detail=f"this service follows region {settings.region_id}, not {region_code}")

    @app.get("/regions/{region_code}/coverage")
    async def region_coverage(region_code: str, request: Request,
                              guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        """From when the region's (and any unit's) visit data are complete."""
        from services.continuity.adapters.coverage import read_coverage_rows

        _this_region(region_code)
        await guard.region("continuity.region.coverage.read")
        async with request.app.state.db.acquire() as conn:
            rows = await read_coverage_rows(conn, region_code)
        region = next((r for r in rows if r["care_unit_id"] == ""), None)
        return {"region_code": region_code,
                "complete_from": region["complete_from"] if region else None,
                "source": region["source"] if region else None,
                "note": region["note"] if region else None,
                "units": [r for r in rows if r["care_unit_id"]],
                "window_months": settings.window_months}

    @app.get("/regions/{region_code}/goals")
    async def region_goals(
        region_code: str, request: Request, guard: Annotated[AccessGuard, Depends(access_guard)],
        baseline: Annotated[date | None, Query(description="Baseline date [default: the latest pinned]")] = None,
        now: Annotated[date | None, Query(description="Compare as of this date [default: the latest snapshot]")] = None,
        units: Annotated[bool, Query(description="Include each unit's rows")] = False,
    ) -> dict:
        """G2/G4: baseline vs now on complete windows of equal length, with cohort sizes, 95 % intervals,
        the same patients' change and a verdict (continuity.goal_comparison). Rows of every cohort ('all',
        'sabo', 'rub45'); a row without a goal (the RUB 4–5 cohort, SÄBO total contacts) has no verdict."""
        from services.continuity.adapters.goals import goal_comparison, latest_pinned_baseline

        _this_region(region_code)
        await guard.region("continuity.region.goals.read")
        async with request.app.state.db.acquire() as conn:
            if baseline is None:
                baseline = await latest_pinned_baseline(conn, region_code)
                if baseline is None:
                    raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                                        detail=f"region {region_code} has no pinned baseline: pass ?baseline="
                                               "YYYY-MM-DD or pin one (flk continuity baseline pin)")
            rows = await goal_comparison(conn, region_code, baseline, now, units=units)
        # a unit's rows only for those who may read that unit's aggregates (as /units/{unit}/continuity)
        rows = [r for r in rows if r["level"] != "unit" or may_read_unit(guard.principal, r["entity_id"])]
        return {"region_code": region_code, "baseline": baseline, "now": now, "rows": rows}


    return app
