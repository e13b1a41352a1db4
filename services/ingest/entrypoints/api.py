"""The FHIR ingest's HTTP API (FHIR R4, JSON: ``application/fhir+json`` or ``application/json``).

* ``POST /fhir/Encounter`` and ``PUT /fhir/Encounter/{id}`` — one Encounter; 201 recorded, 200 replaced /
  cancelled / unchanged, each with an informational OperationOutcome; 400 / 403 / 409 / 422 with an
  OperationOutcome naming each problem at its FHIRPath (nothing stored or published).
* ``POST /fhir`` — a ``batch`` or ``transaction`` Bundle of Encounters (and the Patients, Practitioners,
  PractitionerRoles, Organizations they refer to); answered with a ``batch-response`` /
  ``transaction-response`` (one entry per entry), or for a refused transaction one OperationOutcome.

Bearer token with the role ``ehr_integration`` (flk/security; writes only for the units in its token).
Every change to a patient's visits is audit-logged in the same transaction. Plus ``/healthz``,
``/readyz`` (flk.api) and ``/metrics``.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Path, Request, Response
from prometheus_client import CollectorRegistry

from flk.api import install_platform, keep_session, platform_lifespan
from flk.security.audit import AuditRecord
from flk.security.fastapi import authenticated
from flk.security.tokens import Principal, Role
from services.ingest.adapters.backlog import ingest_backlog
from services.ingest.adapters.metrics import PrometheusIngestProbe
from services.ingest.adapters.store import EncounterStore
from services.ingest.domain.fhir import Issue
from services.ingest.domain.outcome import operation_outcome
from services.ingest.service_layer.ingest import Answer, IngestService
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"
EncounterId = Annotated[str, Path(pattern=r"^[A-Za-z0-9.-]{1,64}$", description="the Encounter's logical id")]


def _fhir(answer: Answer) -> Response:
    return Response(orjson.dumps(answer.body), status_code=answer.status, media_type=FHIR_JSON)


def _refuse(status: int, expression: str, text: str, code: str) -> Response:
    return _fhir(Answer(status, operation_outcome([Issue(expression, text, code)])))


class FhirErrors:
    """ASGI wrapper: an error answered by the platform's layers (401 without a token, 413 too large, 400
    nested too deep, 503 database away, ...) as a FHIR OperationOutcome, as FHIR clients expect. Bodies
    that already are FHIR resources pass untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/fhir"):
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or ())
                fhir = headers.get(b"content-type", b"").startswith(FHIR_JSON.encode())
                if message["status"] >= 400 and not fhir:
                    start = message
                    return
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await send_outcome(start, b"".join(chunks))
            else:
                await send(message)

        async def send_outcome(start_message: dict, body: bytes) -> None:
            try:
                parsed = orjson.loads(body)
                detail = parsed.get("detail") if isinstance(parsed, dict) else None
            except orjson.JSONDecodeError:
                detail = None
            status = start_message["status"]
            text = detail if isinstance(detail, str) else f"HTTP {status}"
            code = {401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported", 413: "too-costly",
                    503: "transient"}.get(status, "exception" if status >= 500 else "invalid")
            out = orjson.dumps(operation_outcome([Issue("Bundle" if scope.get("path") == "/fhir" else "Encounter",
                                                        text, code)]))
            headers = [(k, v) for k, v in start_message.get("headers", []) if k.lower() not in (b"content-type",
                                                                                                  b"content-length")]
            headers += [(b"content-type", FHIR_JSON.encode()), (b"content-length", str(len(out)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": out})

        await self.app(scope, receive, capture)


def create_app(settings: IngestSettings, *, run_relay: bool = True) -> FastAPI:
    """The app; with ``run_relay`` its lifespan also runs the outbox relay (committed events -> Kafka)."""
    metrics_registry = CollectorRegistry()
    probe = PrometheusIngestProbe(metrics_registry)
    platform = settings.http_platform()

    async def start(app: FastAPI):
        from flk.tasks import Wakeup, stop_tasks, supervised_task

        wake = Wakeup()
        app.state.service = IngestService(EncounterStore(app.state.db),
                                          settings.platform.pseudonym_key.get_secret_value().encode(),
                                          max_bundle_entries=settings.max_bundle_entries, probe=probe, on_commit=wake)
        service = app.state.service
        if not run_relay:
            async def close_service() -> None:
                service.close()

            return close_service
        from flk.events.producer import new_producer
        from services.ingest.adapters.relay import ingest_relay

        producer = new_producer(settings.platform.kafka_bootstrap, client_id="ingest",
                                connection=settings.platform.kafka_connection())
        await producer.start()
        relay = ingest_relay(app.state.db, producer, settings.source, settings.platform.topic_prefix,
                             settings.relay_batch, probe)

        async def relay_loop() -> None:
            while True:
                await relay.publish_all()
                probe.outbox_pending(await relay.pending())
                await wake.wait(settings.relay_interval_s)

        task = supervised_task("ingest-relay", relay_loop, log)

        async def close() -> None:
            await stop_tasks([task], log)
            try:
                await relay.publish_all()
            except Exception:  # noqa: BLE001 - published at the next start
                log.warning("ingest relay: outbox not drained at stop; it is published at the next start")
            await producer.stop()
            service.close()

        return close

    pool = {"max_size": settings.pool_size, "reset": keep_session}
    app = FastAPI(title="flk FHIR ingest", version="1", lifespan=platform_lifespan(platform, start, pool),
                  description="FHIR R4 Encounters (and Bundles of them) -> the visit events (ehr.visits.v1).")
    install_platform(app, platform, backlog=lambda app: ingest_backlog(app.state.db), metrics=metrics_registry)
    app.add_middleware(FhirErrors)  # outermost: it also sees the request limits' answers

    async def writer(request: Request, principal: Principal) -> str | Response:
        """The request id, or the refusal of a caller that may not write visits (audit-logged)."""
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        if principal.role is not Role.EHR_INTEGRATION:
            await request.app.state.audit_log.record(AuditRecord(principal, "ingest.encounter.write", "denied",
                                                                 request_id=request_id))
            return _refuse(403, "Encounter", "only an EHR integration (role ehr_integration) may write visits",
                           "forbidden")
        return request_id

    async def body_of(request: Request, what: str) -> Any | Response:
        try:
            return orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _refuse(400, what, "the body is not JSON", "structure")

    async def answer(kind: str, request: Request, principal: Principal, handle) -> Response:
        started = time.perf_counter()
        checked = await writer(request, principal)
        if isinstance(checked, Response):
            response = checked
        else:
            raw = await body_of(request, "Bundle" if kind == "bundle" else "Encounter")
            response = raw if isinstance(raw, Response) else _fhir(await handle(raw, checked))
        probe.request(kind, response.status_code, time.perf_counter() - started)
        return response

    @app.post("/fhir/Encounter", response_class=Response, summary="Ingest one FHIR R4 Encounter")
    async def post_encounter(request: Request, principal: Annotated[Principal, Depends(authenticated)]) -> Response:
        return await answer("encounter", request, principal,
                            lambda raw, rid: request.app.state.service.encounter(raw, principal, rid))

    @app.put("/fhir/Encounter/{encounter_id}", response_class=Response,
             summary="Ingest one FHIR R4 Encounter under its id")
    async def put_encounter(encounter_id: EncounterId, request: Request,
                            principal: Annotated[Principal, Depends(authenticated)]) -> Response:
        return await answer("encounter", request, principal,
                            lambda raw, rid: request.app.state.service.encounter(raw, principal, rid, encounter_id))

    @app.post("/fhir", response_class=Response, summary="Ingest a batch or transaction Bundle of Encounters")
    async def post_bundle(request: Request, principal: Annotated[Principal, Depends(authenticated)]) -> Response:
        return await answer("bundle", request, principal,
                            lambda raw, rid: request.app.state.service.bundle(raw, principal, rid))

    return app
