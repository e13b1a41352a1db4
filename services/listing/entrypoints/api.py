"""The listing service's HTTP API: the app, its lifespan (pool, consumers, outbox relay) and its routers.

The contracts are the JSON Schemas in ``schemas/events/`` (commands and events alike).

Routers: ``commands_api`` and ``reads_api``.

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

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from flk.api import install_platform, keep_session, open_pool, platform_lifespan
from flk.security.audit import GroupCommitAuditLog
from services.listing.adapters.backlog import listing_backlog
from services.listing.adapters.metrics import PrometheusListingProbe
from services.listing.entrypoints.commands_api import router as commands_router
from services.listing.entrypoints.reads_api import router as reads_router
from services.listing.settings import ListingSettings


def create_app(settings: ListingSettings, *, run_workers: bool = True) -> FastAPI:
    """The app; with ``run_workers`` its lifespan also runs the Kafka consumers and the outbox relay."""
    metrics_registry = CollectorRegistry()
    probe = PrometheusListingProbe(metrics_registry)

    async def start(app: FastAPI):
        from flk.tasks import Wakeup
        from services.listing.bootstrap import ListingRuntime, build_deps, observe_decisions

        # concurrent requests' audit records share one write (each request still waits for its own)
        app.state.audit_log = GroupCommitAuditLog(app.state.db)
        wake = Wakeup()
        app.state.runtime = None
        if not run_workers:
            app.state.deps = build_deps(settings, app.state.db, observe_decisions(probe))
            return None
        from flk.events.producer import new_producer
        from flk.observability.metrics import PrometheusConsumerProbe

        # the consumers', relay's and sweep's pool: transactions only, no session state (no SET, LISTEN,
        # cursors or session advisory locks), so no reset query on release — one round trip less per
        # fact, chunk and relay batch (the replay's facts are one transaction each)
        worker_pool = await open_pool(settings.platform, max_size=settings.pool_size, reset=keep_session)
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
    install_platform(app, settings.platform, backlog=lambda app: listing_backlog(app.state.db), metrics=metrics_registry)
    app.state.probe = probe
    app.state.listing_settings = settings
    app.include_router(commands_router)
    app.include_router(reads_router)
    return app
