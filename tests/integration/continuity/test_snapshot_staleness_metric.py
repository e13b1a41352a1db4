"""The continuity worker tells Prometheus how long ago it wrote the day's snapshot, and how often it
should (the ContinuitySnapshotStale alert's inputs): the age counts from the start until the first
snapshot and drops back when one is written. And how far its consumer group is behind."""
from __future__ import annotations

import asyncio

from tests.support.builders import a_patient_key

from continuity_stream import eventually, listing, publish, running_worker, service_settings, visit


def sample(worker, name: str, labels: dict | None = None) -> float | None:
    return worker.probe.registry.get_sample_value(name, labels or {})


async def test_the_snapshot_age_grows_from_the_start_and_drops_when_a_snapshot_is_written(
        kafka_bootstrap, topic_prefix, producer, migrated_database):
    p = a_patient_key(331)
    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database,
                                snapshot_enabled=True, snapshot_interval_s=3600)  # the loop does not write one
    async with running_worker(settings) as worker:
        assert sample(worker, "flk_continuity_snapshot_interval_seconds") == 3600
        await publish(producer, topic_prefix, listing(p), visit(p, "s1"), visit(p, "s2"), visit(p, "s3"))
        await eventually(lambda: worker.processed_events >= 4)
        await asyncio.sleep(1.0)
        before = sample(worker, "flk_continuity_snapshot_age_seconds")
        assert before >= 1.0

        assert await worker.snapshot_now() is True

        after = sample(worker, "flk_continuity_snapshot_age_seconds")
        assert 0 <= after < 1.0 < before


async def test_the_worker_exports_its_consumer_groups_lag_as_the_broker_sees_it(
        kafka_bootstrap, topic_prefix, producer):
    """The ConsumerLagGrowing alert's input (flk_consumer_group_lag_records{group="continuity"})."""
    p = a_patient_key(332)
    async with running_worker(service_settings(kafka_bootstrap, topic_prefix)) as worker:
        await publish(producer, topic_prefix, listing(p), visit(p, "g1"))
        await eventually(lambda: worker.processed_events >= 2)
        await eventually(lambda: sample(worker, "flk_consumer_group_lag_records", {"group": "continuity"}) is not None)
