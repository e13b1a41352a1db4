"""flk.collector: the cyclic garbage collector between a worker's batches, not inside them."""
import gc
import weakref

import pytest

from flk.collector import BatchCollector


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_the_automatic_collector_is_off_within_a_batch_and_on_again_after(collector_on):
    collector = BatchCollector(clock=Clock())
    with collector.batch():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_on_again_when_the_batch_fails(collector_on):
    collector = BatchCollector(clock=Clock())
    with pytest.raises(RuntimeError):
        with collector.batch():
            raise RuntimeError("broker away")
    assert gc.isenabled()


def test_a_caller_that_switched_the_collector_off_keeps_it_off(collector_on):
    gc.disable()
    clock = Clock()
    collector = BatchCollector(full_every_s=1.0, clock=clock)
    clock.now = 5.0
    with collector.batch():
        pass
    assert not gc.isenabled()
    assert collector.full_collections == 0  # (nor does it collect: the caller owns the collector)


def test_a_cycle_made_within_a_batch_lives_through_it_and_is_freed_when_a_full_collection_is_due(collector_on):
    clock = Clock()
    collector = BatchCollector(full_every_s=60.0, clock=clock)
    with collector.batch():
        cycle = Cycle()
        freed = weakref.ref(cycle)
        del cycle
        allocated = [[] for _ in range(gc.get_threshold()[0] * 10)]  # the automatic collector would run
        assert freed() is not None
        del allocated
    clock.now = 60.0
    collector.collect_due()
    assert freed() is None
    assert collector.full_collections == 1


def test_young_generations_are_collected_after_a_batch_that_allocated_past_the_first_threshold(collector_on):
    collector = BatchCollector(full_every_s=60.0, clock=Clock())
    with collector.batch():
        kept = [[] for _ in range(gc.get_threshold()[0] * 2)]  # live containers: the count stays up
    assert collector.young_collections == 1
    assert collector.full_collections == 0
    assert gc.get_count()[0] < gc.get_threshold()[0]
    del kept


def test_a_full_collection_elsewhere_postpones_the_next_one(collector_on):
    clock = Clock()
    collector = BatchCollector(full_every_s=60.0, clock=clock)
    clock.now = 50.0
    collector.collected_fully()
    clock.now = 100.0
    collector.collect_due()
    assert collector.full_collections == 0
    clock.now = 110.0
    collector.collect_due()
    assert collector.full_collections == 1


async def test_a_served_app_freezes_what_lives_once_its_lifespan_has_started():
    from flk.service import frozen_after_startup

    seen = []

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        await receive()
        seen.append(gc.get_freeze_count())
        await send({"type": "lifespan.startup.complete"})

    messages = iter([{"type": "lifespan.startup"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append((message["type"], gc.get_freeze_count()))

    gc.unfreeze()
    try:
        await frozen_after_startup(app)({"type": "lifespan"}, receive, send)
        assert seen == [0]
        assert sent[0][0] == "lifespan.startup.complete" and sent[0][1] > 0
    finally:
        gc.unfreeze()
