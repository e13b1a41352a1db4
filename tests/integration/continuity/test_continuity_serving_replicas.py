"""Serving replicas (services/continuity/follower.py): they follow the worker's changelog in their own
group and serve exactly what the worker committed, without processing an input or writing anything —
so the changelog and the output topic keep one writer however many replicas serve."""
from __future__ import annotations

import contextlib

import pytest

from services.continuity.bootstrap import NotServedHere, partition_of
from services.continuity.follower import ChangelogFollower
from services.continuity.adapters.store import MemoryStore
from services.continuity.settings import SERVING_REPLICA_GROUP
from tests.support.builders import a_patient_key

from changelog_support import PARTITIONS, indices_events, served, served_by, stable_ends
from continuity_stream import eventually, listing, publish, running_worker, service_settings, visit

pytestmark = pytest.mark.integration

DOCTORS = ["SE2321000016-L001", "SE2321000016-L002", "SE2321000016-L003"]


@contextlib.asynccontextmanager
async def running_follower(settings, name: str):
    follower = ChangelogFollower(settings.model_copy(update={
        "follow_changelog": True, "group_id": SERVING_REPLICA_GROUP,
        "platform": settings.platform.model_copy(update={"replica_name": name})}), store=MemoryStore())
    await follower.start()
    try:
        yield follower
    finally:
        await follower.stop()


def answer(follower: ChangelogFollower, patient: str):
    try:
        found = follower.served.patient(patient)
    except NotServedHere:
        return "not here"
    if found is None:
        return None
    record, indices = found
    return (indices.as_of.isoformat(), record.state.listing_unit_id, indices.doctor._asdict(), indices.total._asdict())


async def end_offsets(bootstrap: str, topics: list[str]) -> dict:
    """The end offsets once the worker's committed transactions have their markers (written shortly after
    a commit returns: read before them, a marker would look like a write after)."""
    from aiokafka import TopicPartition

    return await stable_ends(bootstrap, [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)])


async def test_two_serving_replicas_split_the_partitions_and_serve_exactly_what_the_worker_committed(
        kafka_bootstrap, topic_prefix, producer):
    patients = [a_patient_key(9100 + i) for i in range(60)]
    await publish(producer, topic_prefix, *[listing(p) for p in patients[::2]],
                  *[visit(p, f"s{n}-{i}", practitioner=DOCTORS[(i + n) % 3], when=f"2026-02-{10 + n:02d}T09:30:00Z")
                    for i, p in enumerate(patients) for n in range(3)])
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await eventually(lambda: worker.processed_events >= 30 + 180, timeout_s=60)
        expected = {p: served_by(worker.processor, p) for p in patients}
        written = [topic_prefix + t for t in ("continuity.patients-changelog.v1", "continuity.indices.v1")]
        ends_before = await end_offsets(kafka_bootstrap, written)
        async with running_follower(settings, "continuity-0") as a, running_follower(settings, "continuity-1") as b:
            await eventually(lambda: len(a.served.served_partitions()) + len(b.served.served_partitions()) == 6,
                             timeout_s=60)
            assert not set(a.served.served_partitions()) & set(b.served.served_partitions())
            for p in patients:
                answers = [answer(a, p), answer(b, p)]
                assert sorted(answers, key=str).count("not here") == 1, p  # exactly one replica answers
                assert [x for x in answers if x != "not here"] == [expected[p]]
            # a new visit reaches the owner of the patient's partition through the worker's changelog
            probe = patients[1]
            owner = a if partition_of(probe) in a.served.served_partitions() else b
            await publish(producer, topic_prefix, visit(probe, "s-new", when="2026-03-02T09:30:00Z"))
            await eventually(lambda: answer(owner, probe)[3]["visits"] == expected[probe][3]["visits"] + 1,
                             timeout_s=30)
            served_after = served_by(worker.processor, probe)
            assert answer(owner, probe) == served_after
            with pytest.raises(LookupError):  # a unit's patients are in every partition: not a replica's to answer
                owner.served.unit_aggregates("SE2321000016-E001")
        ends_after = await end_offsets(kafka_bootstrap, written)
    # the followers wrote nothing: what was added is the worker's one new visit (its changelog record, the
    # offset records, its event and the transaction markers), all in the probe's partition
    grown = {tp.topic[len(topic_prefix):] + f"[{tp.partition}]" for tp in ends_after if ends_after[tp] != ends_before[tp]}
    assert grown <= {f"continuity.patients-changelog.v1[{partition_of(probe)}]",
                     f"continuity.indices.v1[{partition_of(probe)}]"}
    assert all(ends_after[tp] >= ends_before[tp] for tp in ends_before)
    events = await indices_events(kafka_bootstrap, topic_prefix)
    assert served(events[probe][-1]) == served_after
