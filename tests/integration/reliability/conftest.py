"""Fixtures of the reliability tests (what they share lives in reliability_deployment and
reliability_support: test modules import those, never this file)."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reliability_deployment import TODAY, Deployment, ready, running_deployment, seed_two_units


@pytest.fixture(scope="module")
async def deployment(infra, tmp_path_factory) -> AsyncIterator[Deployment]:
    """Every service, running, seeded with PATIENT_A (and _C) at UNIT_A and PATIENT_B at UNIT_B."""
    from flk.events.producer import new_producer

    async with running_deployment(infra, tmp_path_factory.mktemp("deployment"),
                                  env={"continuity": {"as_of": TODAY.isoformat()}}) as d:
        await ready(d)
        producer = new_producer(infra.kafka_bootstrap, client_id="reliability-seed")
        await producer.start()
        try:
            await seed_two_units(d, producer)
        finally:
            await producer.stop()
        yield d


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a longer reliability test (runs in CI)")
