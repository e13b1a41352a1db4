"""Background loops of a service process: supervised loops, their wake-ups and their shutdown."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable


def supervised_task(name: str, body: Callable[[], Awaitable[None]], log: logging.Logger,
                    pause_s: float = 1.0) -> asyncio.Task:
    """Run ``body`` as a task that never dies of an error: an exception is logged and the loop
    starts again after ``pause_s``; it ends when ``body`` returns or the task is cancelled."""

    async def supervised() -> None:
        while True:
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the loop goes on
                log.exception("%s loop failed; restarting in %g s", name, pause_s)
                await asyncio.sleep(pause_s)

    return asyncio.create_task(supervised(), name=name)


class Wakeup:
    """An asyncio.Event that synchronous callbacks can set, waited for with a timeout.

    It waits with ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11, ``wait_for``
    returns the inner result when the task is cancelled in the same loop iteration as the event is
    set, and so swallows the cancellation. A loop waiting on it then never stops, and the shutdown
    that awaits it hangs (seen in CI)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __call__(self, *args: object) -> None:
        self.event.set()

    async def wait(self, timeout: float) -> bool:
        """True when woken, False when ``timeout`` seconds passed first. Cancellation propagates."""
        try:
            async with asyncio.timeout(timeout):
                await self.event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()


async def stop_tasks(tasks: Iterable[asyncio.Task], log: logging.Logger, timeout_s: float = 15.0) -> list[str]:
    """Cancel ``tasks`` and wait for them to end, cancelling again while any is still running (a
    library that swallows one cancellation does not keep the process alive). Gives up after
    ``timeout_s`` and returns the names of the tasks that did not end, logged as a warning."""
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(1.0, left))
    for task in tasks:  # retrieved, so that asyncio does not log them as never retrieved
        if task.done() and not task.cancelled() and task.exception() is not None:
            # the type only: an exception's text may carry a value from the data (no patient data in logs)
            log.warning("task %s had ended with %s", task.get_name(), type(task.exception()).__name__)
    stuck = sorted(t.get_name() for t in pending)
    if stuck:
        log.warning("tasks still running %g s after their cancellation: %s", timeout_s, ", ".join(stuck))
    return stuck
