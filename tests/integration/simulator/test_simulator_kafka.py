"""`flk simulate --to kafka` against the real broker: a slice of the small preset, counted back."""
from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from flk.events.envelope import read_record
from flk.events.registry import registry
from tools.simulator.generate import SIM_PREFIX, Simulation
from tools.simulator.sinks import publish
from tests.conftest import consume_all

pytestmark = pytest.mark.integration


async def test_a_small_slice_is_published_and_read_back(kafka_bootstrap: str, topic_prefix: str) -> None:
    sim = Simulation("small", seed=11, end_date=date(2026, 6, 30), limit_people=300,
                     pseudonym_key=b"simulator-integration-key")
    sent = await publish(sim, kafka_bootstrap, topic_prefix, batch_size=500)
    per_topic: Counter = Counter()
    for event_type, count in sim.summary.events.items():
        if not event_type.startswith(SIM_PREFIX):
            per_topic[registry().topic_for(event_type).name] += count
    assert sent == sum(per_topic.values()) > 1_000
    assert {"ehr.visits.v1", "listing.commands.v1", "population.persons.v1", "roster.practitioner-roles.v1",
            "acg.risk-assessments.v1"} <= set(per_topic)
    for topic, expected in per_topic.items():
        records = await consume_all(kafka_bootstrap, topic_prefix + topic, expected=expected, timeout_s=30)
        assert len(records) == expected, topic
        for record in records[:50]:  # they decode as flk CloudEvents with the simulation's time
            envelope = read_record(topic, record.key, record.value, record.headers)
            assert envelope.source == "/tools/simulator/small"
            assert envelope.time is not None and envelope.time.date() <= date(2026, 6, 30)


async def test_rate_paces_the_publishing(kafka_bootstrap: str, topic_prefix: str) -> None:
    sim = Simulation("small", seed=12, end_date=date(2026, 6, 30), limit_people=40,
                     pseudonym_key=b"simulator-integration-key")
    waits: list[float] = []
    now = [0.0]  # a clock that only moves when the publisher sleeps: publishing itself takes no time

    async def fake_sleep(seconds: float) -> None:  # record the pacing instead of waiting
        waits.append(seconds)
        now[0] += seconds

    sent = await publish(sim, kafka_bootstrap, topic_prefix, rate=100, sleep=fake_sleep, clock=lambda: now[0])
    assert sent > 100
    # at 100 events/s, publishing `sent` events must have waited (almost) sent/100 seconds
    assert sum(waits) == pytest.approx(sent / 100, abs=0.1 + 10 / 100)


def test_the_cli_publishes_to_kafka(kafka_bootstrap: str) -> None:
    import asyncio
    import uuid

    from click.testing import CliRunner

    from tools.cli import main
    from flk.events.admin import delete_topics_with_prefix, ensure_topics

    prefix = f"t{uuid.uuid4().hex[:10]}."
    asyncio.run(ensure_topics(kafka_bootstrap, prefix=prefix))
    try:
        result = CliRunner().invoke(main, ["simulate", "--preset", "small", "--limit-people", "30", "--end-date",
                                           "2026-06-30", "--to", "kafka", "--bootstrap", kafka_bootstrap,
                                           "--topic-prefix", prefix, "--no-progress"])
        assert result.exit_code == 0, result.output
        assert "→ kafka" in result.output
        records = asyncio.run(consume_all(kafka_bootstrap, prefix + "population.persons.v1", expected=30,
                                          timeout_s=20))
        assert len(records) >= 30
    finally:
        asyncio.run(delete_topics_with_prefix(kafka_bootstrap, prefix))
