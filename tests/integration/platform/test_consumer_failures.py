"""The shared consumer loop on the real broker: handler failures are retried or dead-lettered,
never skipped, and a restarted consumer resumes where the group committed."""
from __future__ import annotations

import asyncio

from flk.events import dlq
from flk.events.consumer import ConsumerSettings, EventConsumer, PermanentFailure, TransientFailure
from flk.events.envelope import make_record
from flk.events.producer import publish_many
from flk.events.registry import registry
from tests.conftest import consume_all
from tests.support.builders import a_patient_key, a_visit
from tests.support.waiting import run_consumer_until

VISITS = registry().topic_for("visit.recorded.v1").name


async def run_with(handler, bootstrap, prefix, producer, until, group_suffix="g", timeout_s=30.0, max_attempts=3):
    consumer = EventConsumer(
        ConsumerSettings(bootstrap=bootstrap, group_id=prefix + group_suffix, topics=(VISITS,), name="failing",
                         topic_prefix=prefix, max_attempts=max_attempts, backoff_initial_s=0.05),
        handle=handler, dlq_producer=producer,
    )
    await run_consumer_until(consumer, until, timeout_s)


def visits(n: int) -> list[dict]:
    return [a_visit(patient_key=a_patient_key(i % 3), visit_id=f"v{i}") for i in range(n)]


async def test_transient_failures_are_retried_until_the_event_is_handled_once(kafka_bootstrap, topic_prefix, producer):
    await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t") for v in visits(1)], topic_prefix)
    calls, handled = [], []

    async def flaky(envelope):
        calls.append(envelope.id)
        if len(calls) <= 2:
            raise TransientFailure("database unavailable")
        handled.append(envelope.data["visit_id"])

    await run_with(flaky, kafka_bootstrap, topic_prefix, producer, until=lambda: handled)

    assert handled == ["v0"] and len(calls) == 3
    assert await consume_all(kafka_bootstrap, topic_prefix + VISITS + ".dlq", 1, timeout_s=1) == []


async def test_a_handler_bug_is_retried_then_dead_lettered_and_the_next_event_still_handled(
    kafka_bootstrap, topic_prefix, producer
):
    same_patient = [a_visit(patient_key=a_patient_key(7), visit_id=f"v{i}") for i in range(2)]
    records = [make_record("visit.recorded.v1", v, source="/t") for v in same_patient]
    await publish_many(producer, records, topic_prefix)  # one key: one partition, in order
    handled = []

    async def buggy(envelope):
        if envelope.data["visit_id"] == "v0":
            raise ZeroDivisionError("bug")
        handled.append(envelope.data["visit_id"])

    await run_with(buggy, kafka_bootstrap, topic_prefix, producer, until=lambda: handled)
    letters = await consume_all(kafka_bootstrap, topic_prefix + VISITS + ".dlq", 1)

    assert handled == ["v1"]
    assert len(letters) == 1
    assert dict(letters[0].headers)[dlq.REASON] == b"handler failed 3 times: ZeroDivisionError"
    assert letters[0].value == records[0].value


async def test_a_permanent_failure_is_dead_lettered_with_the_handlers_reason(kafka_bootstrap, topic_prefix, producer):
    await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t") for v in visits(1)], topic_prefix)
    seen = []

    async def refusing(envelope):
        seen.append(1)
        raise PermanentFailure("unknown care unit")

    await run_with(refusing, kafka_bootstrap, topic_prefix, producer, until=lambda: seen)
    letters = await consume_all(kafka_bootstrap, topic_prefix + VISITS + ".dlq", 1)

    assert len(seen) == 1
    assert dict(letters[0].headers)[dlq.REASON] == b"rejected by handler: unknown care unit"


async def test_a_restarted_consumer_resumes_without_loss(kafka_bootstrap, topic_prefix, producer):
    sent = visits(40)
    await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t") for v in sent[:20]], topic_prefix)
    first: list[str] = []

    async def collect_first(envelope):
        first.append(envelope.data["visit_id"])

    await run_with(collect_first, kafka_bootstrap, topic_prefix, producer, until=lambda: len(first) >= 20)
    await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t") for v in sent[20:]], topic_prefix)
    second: list[str] = []

    async def collect_second(envelope):
        second.append(envelope.data["visit_id"])

    await run_with(collect_second, kafka_bootstrap, topic_prefix, producer, until=lambda: len(second) >= 20)

    assert sorted(first + second, key=lambda v: int(v[1:])) == [v["visit_id"] for v in sent]
    assert set(second) == {v["visit_id"] for v in sent[20:]}, "committed events are not delivered again"


async def test_consumer_lag_reports_what_a_group_has_not_yet_committed(kafka_bootstrap, topic_prefix, producer):
    from flk.events.lag import consumer_lag

    await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t") for v in visits(6)], topic_prefix)
    handled: list[str] = []

    async def collect(envelope):
        handled.append(envelope.data["visit_id"])

    await run_with(collect, kafka_bootstrap, topic_prefix, producer, until=lambda: len(handled) >= 6)
    group = topic_prefix + "g"
    assert [(g.group, g.lag) for g in await consumer_lag(kafka_bootstrap, [group])] == [(group, 0)]

    await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t")
                                  for v in [a_visit(visit_id=f"late{i}") for i in range(4)]], topic_prefix)
    assert [(g.group, g.lag) for g in await consumer_lag(kafka_bootstrap, [group])] == [(group, 4)]


async def test_one_lag_reader_sees_the_events_published_and_consumed_between_its_reads(
        kafka_bootstrap, topic_prefix, producer):
    """The main job keeps one reader for all its polls: its cached metadata must never hide new events."""
    from flk.events.lag import LagReader

    group = topic_prefix + "g"
    handled: list[str] = []

    async def collect(envelope):
        handled.append(envelope.data["visit_id"])

    async with LagReader(kafka_bootstrap) as reader:
        assert [g.group for g in await reader.lags(prefix=topic_prefix)] == []  # no group yet
        await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t") for v in visits(3)],
                           topic_prefix)
        await run_with(collect, kafka_bootstrap, topic_prefix, producer, until=lambda: len(handled) >= 3)
        assert await reader.groups(topic_prefix) == [group]
        assert [(g.group, g.lag) for g in await reader.lags([group])] == [(group, 0)]
        await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t")
                                      for v in [a_visit(visit_id=f"late{i}") for i in range(5)]], topic_prefix)
        assert [(g.group, g.lag) for g in await reader.lags([group])] == [(group, 5)]
        await run_with(collect, kafka_bootstrap, topic_prefix, producer, until=lambda: len(handled) >= 8)
        assert [(g.group, g.lag) for g in await reader.lags([group])] == [(group, 0)]


async def test_a_groups_lag_is_reported_under_the_consumers_name_while_nothing_consumes(
        kafka_bootstrap, topic_prefix, producer):
    """What the services export as flk_consumer_group_lag_records (the ConsumerLagGrowing alert's
    input): read from the broker, so it grows while the consumer stands still."""
    from flk.events.lag import report_group_lag

    await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t") for v in visits(3)], topic_prefix)
    handled: list[str] = []

    async def collect(envelope):
        handled.append(envelope.data["visit_id"])

    await run_with(collect, kafka_bootstrap, topic_prefix, producer, until=lambda: len(handled) >= 3)
    await publish_many(producer, [make_record("visit.recorded.v1", v, source="/t")
                                  for v in [a_visit(visit_id=f"waiting{i}") for i in range(5)]], topic_prefix)
    reported: list[tuple[str, int]] = []
    task = asyncio.create_task(report_group_lag(
        kafka_bootstrap, {"visits-consumer": topic_prefix + "g"}, lambda name, n: reported.append((name, n)),
        interval_s=0.2))
    try:
        for _ in range(100):
            if reported:
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert reported[0] == ("visits-consumer", 5)
