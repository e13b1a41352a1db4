"""flk.events.consumer.gather_fast_stream: while a stream is fast, a poll that is not full waits for what follows
it (fuller batches: fewer transactions and commits per event); a slower stream's polls, and a backlog's big
ones, are handled at once."""
import time
from collections import namedtuple

import pytest

from flk.events.consumer import StreamPace, gather_fast_stream

pytestmark = pytest.mark.unit

TP = namedtuple("TP", "topic partition")
VISITS_0, VISITS_1 = TP("ehr.visits.v1", 0), TP("ehr.visits.v1", 1)


class Polls:
    """What a consumer's next polls hand out (a getmany's dict each), and what each was asked for."""

    def __init__(self, *polls: dict) -> None:
        self.polls = list(polls)
        self.asked: list[dict] = []

    async def getmany(self, *partitions, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        self.asked.append({"timeout_ms": timeout_ms, "max_records": max_records})
        return self.polls.pop(0) if self.polls else {}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def offsets(start: int, stop: int) -> list[int]:
    return list(range(start, stop))  # (a record stands for itself by its offset)


def test_the_pace_counts_the_records_of_the_last_second():
    clock = Clock()
    pace = StreamPace(clock=clock)
    assert pace.received(300) == 300
    clock.now += 0.5
    assert pace.received(200) == 500
    clock.now += 0.6  # the first poll is more than a second ago
    assert pace.received(0) == 200
    clock.now += 5
    assert pace.received(7) == 7


async def test_a_slow_streams_poll_is_handled_as_it_came_without_waiting():
    """1 000 events a second in bursts of 100 every 0.1 s (the worker benchmark's latency run): no wait."""
    clock = Clock()
    pace = StreamPace(clock=clock)
    consumer = Polls()
    for burst in range(30):
        clock.now += 0.1
        started = time.monotonic()
        batch = {VISITS_0: offsets(100 * burst, 100 * burst + 100)}
        gathered = await gather_fast_stream(consumer, batch, pace, linger_ms=500, from_per_second=2000,
                                            max_records=50_000)
        assert gathered == {VISITS_0: offsets(100 * burst, 100 * burst + 100)}
        assert time.monotonic() - started < 0.25
    assert consumer.asked == []


async def test_a_fast_streams_poll_gets_what_followed_within_the_linger_in_offset_order():
    clock = Clock()
    pace = StreamPace(clock=clock)
    pace.received(1900)  # the polls of the last second
    consumer = Polls({VISITS_0: offsets(120, 150), VISITS_1: offsets(0, 10)})
    started = time.monotonic()
    gathered = await gather_fast_stream(consumer, {VISITS_0: offsets(0, 120)}, pace, linger_ms=50,
                                        from_per_second=2000, max_records=1000)
    assert time.monotonic() - started >= 0.05
    assert gathered == {VISITS_0: offsets(0, 150), VISITS_1: offsets(0, 10)}
    assert consumer.asked == [{"timeout_ms": 0, "max_records": 880}]  # no more than the batch's room, no wait
    assert pace.received(0) == 1900 + 120 + 40


async def test_a_full_batch_is_not_held_back():
    pace = StreamPace()
    pace.received(1900)  # a fast stream: only the batch being full keeps it from waiting
    consumer = Polls({VISITS_0: offsets(1000, 1010)})
    gathered = await gather_fast_stream(consumer, {VISITS_0: offsets(0, 1000)}, pace, linger_ms=500,
                                        from_per_second=2000, max_records=1000)
    assert gathered == {VISITS_0: offsets(0, 1000)} and consumer.asked == []


async def test_a_backlogs_big_poll_is_not_held_back():
    """Catching up from a backlog: what follows is already being fetched, waiting would only idle."""
    consumer = Polls({VISITS_0: offsets(20_000, 40_000)})
    started = time.monotonic()
    gathered = await gather_fast_stream(consumer, {VISITS_0: offsets(0, 20_000)}, StreamPace(), linger_ms=500,
                                        from_per_second=2000, max_records=50_000, below_records=10_000)
    assert gathered == {VISITS_0: offsets(0, 20_000)} and consumer.asked == []
    assert time.monotonic() - started < 0.25


async def test_no_linger_means_every_poll_as_it_came():
    consumer = Polls({VISITS_0: offsets(500, 510)})
    gathered = await gather_fast_stream(consumer, {VISITS_0: offsets(0, 500)}, StreamPace(), linger_ms=0,
                                        from_per_second=1, max_records=50_000)
    assert gathered == {VISITS_0: offsets(0, 500)} and consumer.asked == []


async def test_a_poll_below_the_backlog_size_still_waits_while_the_stream_is_fast():
    consumer = Polls({VISITS_0: offsets(5_000, 6_000)})
    gathered = await gather_fast_stream(consumer, {VISITS_0: offsets(0, 5_000)}, StreamPace(), linger_ms=20,
                                        from_per_second=2000, max_records=50_000, below_records=10_000)
    assert gathered == {VISITS_0: offsets(0, 6_000)}
    assert consumer.asked == [{"timeout_ms": 0, "max_records": 45_000}]
