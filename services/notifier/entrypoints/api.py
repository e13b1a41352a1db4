"""The notifier's HTTP API: /metrics, /healthz, /readyz, a unit's open-gap summary (counts
only), and the admin routes for a unit's alert routing. Every route but the probes needs a
bearer token; reads and changes are audit-logged.

The unit worklist (patient level, HTML) is served by the same app under
``/units/{unit_id}/worklist`` (:mod:`services.notifier.entrypoints.worklist`); alerts link there
(``NotifierSettings.worklist_url``).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, status
from pydantic import BaseModel, Field

from flk.api import install_platform, platform_lifespan
from services.notifier.adapters.backlog import notifier_backlog
from flk.security.audit import AuditRecord
from flk.security.fastapi import AccessGuard, access_guard
from flk.security.tokens import Role
from services.notifier.adapters import alert_store
from services.notifier.adapters.listing_client import ListingClient
from services.notifier.adapters.metrics import PrometheusProbe
from services.notifier.domain.alerts import summarize
from services.notifier.entrypoints.sign_in import install_sign_in
from services.notifier.entrypoints.worklist import install_worklist
from services.notifier.service_layer.routing import build_routing, set_routing
from services.notifier.settings import NotifierSettings

ROUTING_ADMINS = frozenset({Role.LISTING_ADMIN, Role.SERVICE})


class RoutingIn(BaseModel):
    unit_name: str = Field(min_length=1, max_length=200)
    email_to: list[str] = Field(default_factory=list, max_length=20)
    teams_webhook_secret_ref: str | None = Field(default=None, description="the NAME of the secret holding the URL")
    mode: Literal["immediate", "daily_digest"] = "daily_digest"
    digest_hour: int = Field(7, ge=0, le=23)
    quiet_hours: str | None = Field("22:00-07:00", description="'HH:MM-HH:MM' local time, or null")
    escalation_after_days: int | None = Field(14, ge=1)
    escalation_email: list[str] = Field(default_factory=list, max_length=20)
    digest_when_empty: bool = False
    timezone: str = "Europe/Stockholm"


def create_app(settings: NotifierSettings, *, run_workers: bool = True, **runtime_ports: Any) -> FastAPI:
    """The app; with ``run_workers`` its lifespan also runs the consumer, relay, ticker,
    planner and delivery loops (``runtime_ports`` override adapters: clock, email, teams, ...)."""
    probe = runtime_ports.pop("probe", None) or PrometheusProbe()

    async def start_workers(app: FastAPI):
        app.state.notifier_settings = settings
        app.state.runtime = None
        worklist.listing = ListingClient(settings.listing_api_base_url, settings.listing_timeout_s)
        if not run_workers:
            return worklist.listing.aclose
        from flk.events.producer import new_producer
        from services.notifier.bootstrap import build_runtime

        producer = new_producer(settings.platform.kafka_bootstrap, client_id="notifier",
                                connection=settings.platform.kafka_connection())
        await producer.start()
        runtime = build_runtime(settings, app.state.db, producer, probe=probe, **runtime_ports)
        await runtime.start()
        app.state.runtime = runtime

        async def close() -> None:
            await runtime.stop()
            await producer.stop()
            closer = getattr(runtime.teams, "aclose", None)
            if closer:
                await closer()
            await worklist.listing.aclose()

        return close

    app = FastAPI(title="flk notifier", lifespan=platform_lifespan(settings.platform, start_workers))
    install_platform(app, settings.platform, backlog=lambda app: notifier_backlog(app.state.db), metrics=probe.registry)
    app.state.probe = probe
    worklist = install_worklist(app, settings)
    if settings.worklist_sign_in_by_provider:
        install_sign_in(app, worklist)

    @app.get("/units/{unit_id}/care-gaps/summary")
    async def gap_summary(unit_id: str, request: Request,
                          guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        """Counts of the unit's open care gaps (no patient identifiers)."""
        action = "notifier.care_gaps.summary.read"
        await guard.unit(action, unit_id, always_audit=True)
        async with request.app.state.db.acquire() as conn:
            rows = await alert_store.open_gap_rows(conn, unit_id)
        clock = getattr(request.app.state.runtime, "clock", None)
        from datetime import datetime, timezone

        now = clock.now() if clock else datetime.now(timezone.utc)
        s = summarize(unit_id, rows, now)
        return {
            "care_unit_id": unit_id,
            "as_of": s.as_of.isoformat(),
            "open_gaps": s.total,
            "by_cause": {c.value: n for c, n in s.by_cause},
            "by_rub": {("none" if r is None else str(r)): n for r, n in s.by_rub},
            "sabo": s.sabo,
            "oldest_age_days": s.oldest_age_days,
            "worklist_url": settings.worklist_url(unit_id),
        }

    async def _may_configure(guard: AccessGuard, action: str, unit_id: str) -> None:
        p = guard.principal
        allowed = p.role in ROUTING_ADMINS or (p.role is Role.VERKSAMHETSCHEF and unit_id in p.units)
        await guard.audit.record(AuditRecord(p, action, "allowed" if allowed else "denied", unit_id=unit_id,
                                             request_id=guard.request_id))
        if not allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail="only the region's administrators or the unit's verksamhetschef configure alerts")

    @app.get("/units/{unit_id}/routing")
    async def get_routing(unit_id: str, request: Request,
                          guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        await _may_configure(guard, "notifier.routing.read", unit_id)
        async with request.app.state.db.acquire() as conn:
            routing = await alert_store.get_routing(conn, unit_id)
        if routing is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert routing for unit {unit_id}")
        return alert_store.routing_to_dict(routing)

    @app.put("/units/{unit_id}/routing")
    async def put_routing(unit_id: str, body: RoutingIn, request: Request,
                          guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        await _may_configure(guard, "notifier.routing.update", unit_id)
        try:
            routing = build_routing(unit_id, **body.model_dump())
        except ValueError as exc:
            raise HTTPException(422,  # the status constant was renamed (Starlette); the number is the contract
                                detail=str(exc)) from None
        from datetime import datetime, timezone

        await set_routing(request.app.state.db, routing, guard.principal.subject, datetime.now(timezone.utc))
        return alert_store.routing_to_dict(routing)

    return app
