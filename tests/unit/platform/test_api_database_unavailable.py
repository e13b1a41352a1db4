"""A database that cannot be reached gives a plain 503 with a clear body, and the request ends there
(no exception escapes to the server, which would close the client's connection)."""
from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from flk.api import install_platform
from flk.settings import PlatformSettings


def _app(error: BaseException) -> FastAPI:
    app = FastAPI()
    install_platform(app, PlatformSettings())

    @app.get("/read")
    async def read() -> dict:
        raise error

    return app


@pytest.mark.parametrize("error", [ConnectionRefusedError(111, "Connect call failed"),
                                   asyncpg.CannotConnectNowError("the database system is starting up"),
                                   asyncpg.exceptions.AdminShutdownError("terminating connection")],
                         ids=type)
async def test_database_unavailable_answers_503_with_a_clear_body_and_nothing_escapes_to_the_server(error):
    transport = httpx.ASGITransport(app=_app(error), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/read")
    assert response.status_code == 503
    assert response.json() == {"error": "service_unavailable",
                               "detail": "the database is not reachable; try again shortly"}
    assert response.headers["retry-after"] == "5"
