"""Every API refuses an oversized body (413) and a JSON body nested deeper than any contract needs
(400), with a body that says what was wrong, before anything parses it."""
from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request

from flk.api import install_platform
from flk.request_limits import json_nesting_depth
from flk.settings import PlatformSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("body, depth", [
    (b'{"a": 1}', 1),
    (b'{"a": [1, {"b": [2]}]}', 4),
    (b'{"text": "[[[[{{{{ not nesting"}', 1),
    (b'{"q": "a \\" [[[ still in the string", "x": [[1]]}', 3),
    (b'{"path": "C:\\\\", "x": [1]}', 2),           # an escaped backslash ends before the quote
    (b"[" * 1000 + b"]" * 1000, 1000),
    (b"", 0),
])
def test_the_nesting_depth_counts_brackets_outside_strings(body, depth):
    assert json_nesting_depth(body) == depth


def _app() -> FastAPI:
    app = FastAPI()
    install_platform(app, PlatformSettings(http_max_body_bytes=4096, http_max_json_depth=8))

    @app.post("/commands")
    async def command(request: Request) -> dict:
        return {"keys": sorted(await request.json())}

    @app.get("/read")
    async def read() -> dict:
        return {"ok": True}

    return app


async def _post(content: bytes, content_type: str = "application/json", **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        return await client.post("/commands", content=content, headers={"content-type": content_type}, **kwargs)


async def test_a_deeply_nested_json_body_is_refused_with_400_before_it_is_parsed():
    response = await _post(b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    assert response.status_code in (400, 413)  # 400 000 bytes is also too large here
    deep = await _post(b'{"a": ' + b"[" * 20 + b"]" * 20 + b"}")
    assert deep.status_code == 400
    assert deep.json() == {"error": "bad_request", "detail": "the JSON body is nested deeper than 8 levels"}


async def test_an_oversized_body_is_refused_with_413_by_its_length_or_while_it_streams():
    big = await _post(b'{"a": "' + b"x" * 10_000 + b'"}')
    assert big.status_code == 413 and "at most 4096" in big.json()["detail"]

    async def chunks():
        for _ in range(10):
            yield b"x" * 1000

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        response = await client.post("/commands", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


async def test_ordinary_requests_pass_untouched():
    ok = await _post(b'{"b": [1, 2], "a": {"c": [[1]]}}')
    assert ok.status_code == 200 and ok.json() == {"keys": ["a", "b"]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        assert (await client.get("/read")).json() == {"ok": True}
