"""The request-serving pool's cheap release (flk.api.keep_session), against the real PostgreSQL."""
from __future__ import annotations

import pytest

from flk.api import keep_session, open_pool
from flk.settings import PlatformSettings

pytestmark = pytest.mark.integration


async def test_keep_session_pool_still_rolls_back_a_transaction_left_open_on_release(fresh_database):
    pool = await open_pool(PlatformSettings(database_url=fresh_database), min_size=1, max_size=1, reset=keep_session)
    try:
        await pool.execute("CREATE TABLE t (n int)")
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("INSERT INTO t VALUES (1)")
            # released without commit or rollback (a handler that forgot, or was cancelled)
        async with pool.acquire() as conn:  # max_size=1: the same connection
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await pool.close()


async def test_keep_session_pool_releases_without_a_reset_query(fresh_database):
    pool = await open_pool(PlatformSettings(database_url=fresh_database), min_size=1, max_size=1, reset=keep_session)
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET application_name = 'kept'")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            # asyncpg's default reset would have run RESET ALL
            assert await conn.fetchval("SHOW application_name") == "kept"
    finally:
        await pool.close()
