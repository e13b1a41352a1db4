"""Background loops of a service process."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


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
