"""The group-commit audit log (flk.security.audit.GroupCommitAuditLog) on the real PostgreSQL:
concurrent requests share writes, yet each returns only once its own record is committed."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from flk.api import open_pool
from flk.security.audit import AuditRecord, GroupCommitAuditLog
from flk.security.tokens import Principal, Role
from flk.settings import PlatformSettings
from tests.support.builders import UNIT_A, a_patient_key

pytestmark = pytest.mark.integration

CLINICIAN = Principal("SE2321000016-U001", Role.CLINICIAN, frozenset({UNIT_A}))


class CountingPool:
    """The real pool, counting the writes that reach it."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.writes = 0

    async def executemany(self, sql, rows):
        self.writes += 1
        await self.pool.executemany(sql, rows)

    async def execute(self, sql, *args):
        self.writes += 1
        await self.pool.execute(sql, *args)


@pytest.fixture
async def pool(migrated_database):
    pool = await open_pool(PlatformSettings(database_url=migrated_database), max_size=4)
    yield pool
    await pool.close()


def read_of(n: int, outcome: str = "allowed") -> AuditRecord:
    return AuditRecord(CLINICIAN, "test.patient.read", outcome, unit_id=UNIT_A, patient_key=a_patient_key(n),
                       request_id=f"req-{n}")


async def test_concurrent_reads_share_writes_and_each_is_committed_when_its_request_goes_on(pool,
                                                                                            migrated_database):
    counting = CountingPool(pool)
    audit = GroupCommitAuditLog(counting)
    observer = await open_pool(PlatformSettings(database_url=migrated_database), max_size=10)  # other sessions
    try:
        async def read(n: int) -> int:
            await audit.record(read_of(n))
            # committed: another session sees it at once
            return await observer.fetchval("SELECT count(*) FROM platform.audit_log WHERE request_id = $1", f"req-{n}")

        assert await asyncio.gather(*(read(n) for n in range(50))) == [1] * 50
        rows = await observer.fetch("SELECT patient_key, actor, actor_units, outcome FROM platform.audit_log")
    finally:
        await observer.close()
    assert sorted(r["patient_key"] for r in rows) == sorted(a_patient_key(n) for n in range(50))
    assert {(r["actor"], tuple(r["actor_units"]), r["outcome"]) for r in rows} == {(CLINICIAN.subject, (UNIT_A,), "allowed")}
    assert counting.writes < 50


async def test_a_record_that_cannot_be_written_fails_its_own_request_only(pool, migrated_database):
    audit = GroupCommitAuditLog(pool)
    results = await asyncio.gather(audit.record(read_of(1)), audit.record(read_of(2, outcome="peeked")),
                                   audit.record(read_of(3)), return_exceptions=True)

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncpg.CheckViolationError)
    written = await pool.fetch("SELECT request_id FROM platform.audit_log ORDER BY request_id")
    assert [r["request_id"] for r in written] == ["req-1", "req-3"]


async def test_a_lone_read_is_written_at_once(pool):
    audit = GroupCommitAuditLog(pool)
    await asyncio.wait_for(audit.record(read_of(7)), 5)
    assert await pool.fetchval("SELECT count(*) FROM platform.audit_log WHERE request_id = 'req-7'") == 1
