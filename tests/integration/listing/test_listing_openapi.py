"""Schemathesis against the listing API's own OpenAPI: valid and invalid requests generated from
the schema (the contract schemas are the command bodies) never get a server error.

The app runs in this process under uvicorn (its lifespan opens the pool, as in production) on a
fresh migrated database with a region registered; requests carry a valid listing administrator
token, so they reach the handlers and the rules. Bounded: 25 examples per operation and mode.
"""
from __future__ import annotations

import asyncio
import threading
import time
from datetime import date, datetime, timedelta, timezone

from listing_harness import DOCTOR_1, JWT_KEY, REGION, ROLE_1, UNIT_A, UNIT_A_NAME, role_started, unit_register

from flk.security.tokens import Role, issue_token
from flk.settings import PlatformSettings
from services.listing.settings import ListingSettings
from tests.support.builders import a_patient_key
from tests.support.ports import free_port

MAX_EXAMPLES = 25


class InProcessServer:
    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the listing app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def steered(strategy, keys: list[str]):
    """Half of the valid bodies name a seeded person and unit on realistic dates, so they reach the
    rules with state behind them (random keys and years only meet "unknown person" / 422)."""
    from hypothesis import strategies as st

    def steer(case, key, on, at, aim):
        if aim and isinstance(case.body, dict):
            body = dict(case.body)
            body["patient_key"] = key
            body["care_unit_id"] = UNIT_A
            body["requested_at"] = at.isoformat().replace("+00:00", "Z")
            if "effective_date" in body:
                body["effective_date"] = on.isoformat()
            case.body = body
        return case

    return st.builds(steer, strategy, st.sampled_from(keys),
                     st.dates(min_value=date.today() - timedelta(days=400), max_value=date.today() + timedelta(days=30)),
                     st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1),
                                  timezones=st.just(timezone.utc)),
                     st.booleans())


def fuzz(base_url: str, token: str, keys: list[str]) -> list[str]:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            if mode is schemathesis.GenerationMode.POSITIVE:
                strategy = steered(strategy, keys)

            @given(case=strategy)
            @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def check(case) -> None:
                response = case.call(base_url=base_url, headers=headers, timeout=10)
                if response.status_code >= 500:
                    failures.append(f"{operation.label} [{mode.value}] -> {response.status_code}: {response.text[:200]}")

            check()
    return failures


async def test_schemathesis_finds_no_server_error_in_the_listing_api(migrated_database):
    import asyncpg

    from services.listing.adapters.reference import apply_unit_register, upsert_person, upsert_role
    from services.listing.entrypoints.api import create_app

    # a registered unit, a doctor and three persons, so generated commands reach the rules with state
    keys = [a_patient_key(9000 + i) for i in range(3)]
    conn = await asyncpg.connect(migrated_database)
    try:
        async with conn.transaction():
            await apply_unit_register(conn, unit_register(UNIT_A, UNIT_A_NAME), date.today())
            await upsert_role(conn, role_started(ROLE_1, DOCTOR_1, UNIT_A))
            for key in keys:
                await upsert_person(conn, key, population_status="folkbokford", home_region=REGION,
                                    birth_date=date(1950, 1, 1), status_date=None)
    finally:
        await conn.close()
    settings = ListingSettings(platform=PlatformSettings(database_url=migrated_database, jwt_verify_key=JWT_KEY,
                                                         environment="test"))
    app = create_app(settings, run_workers=False)
    token = issue_token(settings.platform, "SE2321000016-ADM1", Role.LISTING_ADMIN, [])
    port = free_port()
    with InProcessServer(app, port):
        failures = await asyncio.to_thread(fuzz, f"http://127.0.0.1:{port}", token, keys)
    assert failures == []
