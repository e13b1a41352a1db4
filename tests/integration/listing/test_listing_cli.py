"""`flk listing run` as an operator starts it: migrations first, then API + consumers + relay in one
process; SIGTERM stops it cleanly."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import asyncpg
import httpx

from tests.support.ports import free_port


async def test_flk_listing_run_migrates_serves_and_stops_cleanly_on_sigterm(fresh_database, topic_prefix,
                                                                            kafka_bootstrap):
    port = free_port()
    env = {**os.environ, "FLK_DATABASE_URL": fresh_database, "FLK_TOPIC_PREFIX": topic_prefix,
           "FLK_KAFKA_BOOTSTRAP": kafka_bootstrap, "FLK_LISTING_HTTP_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "tools.cli", "listing", "run"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = False
        deadline = time.monotonic() + 40
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    ready = (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                except httpx.HTTPError:
                    ready = False
                if ready:
                    break
                await asyncio.sleep(0.2)
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text if ready else ""
        assert ready, "the service did not become ready"
        assert "flk_events_handled_total" in metrics or "flk_listing_messages_total" in metrics
        conn = await asyncpg.connect(fresh_database)
        try:
            applied = await conn.fetchval("SELECT count(*) FROM public.flk_schema_migrations WHERE component = 'listing'")
        finally:
            await conn.close()
        assert applied >= 1

        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        output = process.stdout.read().decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # uvicorn shuts down gracefully, then re-raises the signal (exit status -SIGTERM), as it should
    assert code in (0, -signal.SIGTERM), output[-2000:]
    assert "Application shutdown complete" in output and "Traceback" not in output, output[-2000:]
