"""schemathesis against the OpenAPI of every running service: generated requests (valid and
invalid path parameters, bodies, query strings), with a region-wide token so they reach the
handlers, and with a unit's token. No request may get a 5xx or hang.

Bounded: FLK_RELIABILITY_OPENAPI_EXAMPLES examples per operation and token (default 15; the figure in docs/reliability.md: 40).
"""
from __future__ import annotations

import asyncio
import os

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from flk.security.tokens import Role
from tests.support.builders import UNIT_A

from reliability_support import bearer, token

EXAMPLES = int(os.environ.get("FLK_RELIABILITY_OPENAPI_EXAMPLES", "15"))


def _fuzz(spec: dict, base_url: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Run every operation; (requests sent, descriptions of server errors)."""
    schema = schemathesis.openapi.from_dict(spec)
    sent, errors = 0, []
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES, database=None, derandomize=True, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case) -> None:
            nonlocal sent
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=15)
            sent += 1
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path} body={case.body!r:.200} -> "
                              f"{response.status_code} {response.text[:200]}")

        run()
    return sent, errors


async def test_no_generated_request_to_any_service_api_gets_a_server_error(deployment):
    totals = {}
    async with httpx.AsyncClient(timeout=5) as client:
        specs = {name: (await client.get(s.base_url + "/openapi.json")).json()
                 for name, s in deployment.services.items()}
    callers = {"region_admin": bearer(token(deployment.settings, Role.LISTING_ADMIN)),
               "unit_chief": bearer(token(deployment.settings, Role.VERKSAMHETSCHEF, [UNIT_A]))}
    problems = []
    for name, spec in specs.items():
        for caller, headers in callers.items():
            sent, errors = await asyncio.to_thread(_fuzz, spec, deployment.url(name), headers)
            totals[(name, caller)] = sent
            problems += [f"{name} as {caller}: {e}" for e in errors]
    print(f"\nschemathesis: {sum(totals.values())} requests, {len(problems)} server errors: {totals}")
    assert all(totals.values()), "every operation was exercised"
    assert problems == []
    for service in deployment.services.values():
        assert service.alive and "Traceback" not in service.log()


async def test_every_service_refuses_a_deeply_nested_or_oversized_body_with_a_clear_4xx(deployment):
    """A 200 000-level nested JSON body used to reach the JSON parser (RecursionError: 500), and a
    50 MB body was read whole before it was refused. Now the body is measured first (default limit
    256 KiB: the 400 KB nested body is refused for its size before its depth is looked at)."""
    admin = bearer(token(deployment.settings, Role.LISTING_ADMIN))
    nested = b'{"person": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    deep_but_small = b'{"person": ' + b"[" * 100 + b"]" * 100 + b"}"
    huge = b'{"person": "' + b"x" * (1024 * 1024) + b'"}'
    paths = {"listing": "/commands/listing.request.v1", "continuity": "/regions/19/goals",
             "notifier": "/units/x/worklist/assign"}
    seen = {}
    async with httpx.AsyncClient(timeout=60) as client:
        for name, path in paths.items():
            url = deployment.url(name) + path
            json_headers = {**admin, "content-type": "application/json"}
            seen[name] = [(await client.post(url, content=body, headers=json_headers))
                          for body in (nested, deep_but_small, huge)]
    for name, (too_deep_and_big, too_deep, too_big) in seen.items():
        assert too_deep_and_big.status_code == 413, (name, too_deep_and_big.text)
        assert too_deep.status_code == 400, (name, too_deep.text)
        assert too_deep.json()["detail"].startswith("the JSON body is nested deeper than"), name
        assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large", name
    for service in deployment.services.values():
        assert service.alive and "Traceback" not in service.log()
