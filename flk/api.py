"""What every flk HTTP API shares: the database pool, the audit log, error bodies, metrics.

A service's `create_app(settings)` calls :func:`install_platform` and adds its routes.
"""
from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from flk.db.errors import is_transient_database_error, transient_database_errors
from flk.security.audit import PostgresAuditLog
from flk.settings import PlatformSettings

log = logging.getLogger(__name__)

async def open_pool(settings: PlatformSettings, **kwargs):
    import asyncpg

    return await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=kwargs.pop("min_size", 1),
        max_size=kwargs.pop("max_size", 10), command_timeout=kwargs.pop("command_timeout", 10), **kwargs,
    )


async def keep_session(conn) -> None:
    """A pool ``reset`` for pools whose users never change session state (no SET, LISTEN, cursors
    or session advisory locks; transactions only through ``conn.transaction()``): asyncpg still
    rolls back an open transaction on release, but skips its default reset query (``RESET ALL;
    UNLISTEN *; …``), one database round trip per release. For request-serving pools."""


def platform_lifespan(
    settings: PlatformSettings,
    extra: Callable[[FastAPI], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
    pool_options: dict | None = None,
):
    """Lifespan that opens the pool and audit log; `extra(app)` may start more and returns its closer.
    `pool_options` go to `open_pool` (e.g. ``max_size``, ``reset=keep_session``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.platform_settings = settings
        app.state.db = await open_pool(settings, **(pool_options or {}))
        app.state.audit_log = PostgresAuditLog(app.state.db)
        close_extra = await extra(app) if extra else None
        try:
            yield
        finally:
            if close_extra:
                await close_extra()
            await app.state.db.close()

    return lifespan


#: what must never reach a log line: patient keys and anything shaped like a personnummer /
#: samordningsnummer (10 or 12 digits, with or without '-' / '+')
_PATIENT_IDENTIFIER = re.compile(r"pk1_[a-z2-7]{26}|(?<![0-9A-Za-z])(?:[0-9]{6}|[0-9]{8})[-+]?[0-9]{4}(?![0-9])")


def redact_patient_identifiers(text: str) -> str:
    return _PATIENT_IDENTIFIER.sub("<redacted>", text)


class RedactPatientIdentifiers(logging.Filter):
    """Access logs name the request path, and a path may name a patient (``/patients/pk1_…``):
    such log records are written with the identifier redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_patient_identifiers(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_patient_identifiers(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_logs() -> None:
    """Install the redaction on uvicorn's access logger (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactPatientIdentifiers) for f in access.filters):
        access.addFilter(RedactPatientIdentifiers())


#: a service's work accepted but not yet done, by kind (events not yet published, commands waiting
#: for their person, alerts not yet planned or delivered): `/readyz` reports it as ``backlog``
BacklogReader = Callable[[FastAPI], Awaitable[dict[str, int]]]


def install_platform(app: FastAPI, settings: PlatformSettings, backlog: BacklogReader | None = None,
                     metrics: CollectorRegistry | None = None) -> None:
    """Error bodies that say what was wrong, and 503 (not a trace) when the database is down;
    bounded request bodies (413 too large, 400 JSON nested too deep: flk/request_limits.py);
    access logs without patient identifiers; `/metrics` (the ``metrics`` registry, in the
    Prometheus text format); `/healthz`, and `/readyz` with the service's
    ``backlog`` (the counts `backlog(app)` reads) so that operators and the main job learn
    what is still to do from the service itself, never from its tables."""
    from flk.request_limits import RequestLimits

    redact_access_logs()
    app.add_middleware(RequestLimits, max_body_bytes=settings.http_max_body_bytes,
                       max_json_depth=settings.http_max_json_depth)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"error": "service_unavailable", "detail": "the database is not reachable; try again shortly"},
            headers={"Retry-After": "5"},
        )

    # Registered per class, so Starlette's ExceptionMiddleware answers and the request ends there. A
    # handler for `Exception` alone runs in ServerErrorMiddleware, which re-raises after answering, and
    # uvicorn then closes the client's connection (found by the reliability tests: PostgreSQL down).
    for exc_class in transient_database_errors():
        app.add_exception_handler(exc_class, unavailable)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_transient_database_error(exc):
            return await unavailable(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"error": "internal_error", "detail": "unexpected error; it was logged"})

    if metrics is not None:
        @app.get("/metrics", include_in_schema=False)
        async def metrics_text() -> Response:
            return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        try:
            await request.app.state.db.fetchval("SELECT 1")
            body: dict = {"status": "ready"}
            if backlog is not None:
                body["backlog"] = await backlog(request.app)
        except Exception as exc:  # noqa: BLE001
            if is_transient_database_error(exc):
                return JSONResponse(status_code=503, content={"status": "database unavailable"})
            raise
        return JSONResponse(body)
