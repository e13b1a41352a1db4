"""Polling for tests that wait on real services."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def wait_until(condition: Callable[[], Any], timeout_s: float = 20.0, interval_s: float = 0.1,
                     what: str = "condition") -> Any:
    """Poll a (sync or async) condition until it is truthy; its value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def run_consumer_until(consumer, until: Callable[[], Any], timeout_s: float = 30.0) -> None:
    """Start a platform consumer, run its loop until ``until()`` is truthy (or the timeout), stop it."""
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not until() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def became_ready(client, timeout_s: float, path: str = "/readyz") -> bool:
    """Whether a service's ``/readyz`` (through an httpx client with its base URL) answered 200 in time."""
    import httpx

    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            if (await client.get(path)).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    return False
