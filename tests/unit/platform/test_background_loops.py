"""A service's background loops stop when it stops: a wake-up that arrives together with the
cancellation does not keep a loop alive, and a loop that swallows one cancellation is cancelled again."""
from __future__ import annotations

import asyncio
import logging

import pytest

from flk.tasks import Wakeup, stop_tasks

pytestmark = pytest.mark.unit
log = logging.getLogger("test")


async def _loop_waiting_on(wake: Wakeup) -> None:
    while True:
        await wake.wait(30)


async def test_a_loop_woken_in_the_same_instant_as_it_is_cancelled_still_stops():
    wake = Wakeup()
    task = asyncio.create_task(_loop_waiting_on(wake))
    await asyncio.sleep(0)  # the loop now waits on the event

    wake()  # the wake-up and the cancellation land in the same loop iteration
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)

    assert task in done and task.cancelled(), "asyncio.wait_for on 3.11 swallows this cancellation"


async def test_a_wakeup_reports_whether_it_was_woken_or_timed_out():
    wake = Wakeup()
    assert await wake.wait(0.01) is False
    wake()
    assert await wake.wait(5) is True
    assert await wake.wait(0.01) is False, "a wake-up is used once"


async def test_stopping_cancels_again_a_loop_that_swallowed_the_first_cancellation():
    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # a library swallowing the cancellation
        await asyncio.sleep(30)

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)

    assert await stop_tasks([task], log, timeout_s=5) == []
    assert task.cancelled()


async def test_stopping_gives_up_after_its_timeout_and_names_the_loop_that_would_not_end(caplog):
    release = asyncio.Event()

    async def immortal() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immortal(), name="immortal-loop")
    await asyncio.sleep(0)

    with caplog.at_level(logging.WARNING):
        assert await stop_tasks([task], log, timeout_s=0.3) == ["immortal-loop"]
    assert "immortal-loop" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=2)
