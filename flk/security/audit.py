"""The audit log: every read of patient data is recorded (who, which unit, which patient, what, when, why)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal, Protocol

from flk.security.tokens import Principal


@dataclass(frozen=True)
class AuditRecord:
    principal: Principal
    action: str  # e.g. 'listing.patient.read'
    outcome: Literal["allowed", "denied"]
    unit_id: str | None = None
    patient_key: str | None = None
    purpose: str | None = None
    request_id: str | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class AuditLog(Protocol):
    async def record(self, entry: AuditRecord) -> None: ...


INSERT = """
INSERT INTO platform.audit_log
    (occurred_at, actor, actor_role, actor_units, unit_id, patient_key, action, purpose, outcome, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


def _row(entry: AuditRecord) -> tuple:
    p = entry.principal
    return (entry.occurred_at, p.subject, p.role.value, sorted(p.units), entry.unit_id, entry.patient_key,
            entry.action, entry.purpose, entry.outcome, entry.request_id)


async def record_in_transaction(conn, entries: list[AuditRecord]) -> None:
    """Write audit records on ``conn`` inside the caller's transaction: they commit (or roll back) with
    the change they record (a write API's audit trail never names a write that did not happen)."""
    if entries:
        await conn.executemany(INSERT, [_row(e) for e in entries])


class PostgresAuditLog:
    """Writes audit records with an asyncpg pool. A failed write fails the request (no silent reads)."""

    def __init__(self, pool) -> None:
        self.pool = pool

    async def record(self, entry: AuditRecord) -> None:
        await self.pool.execute(INSERT, *_row(entry))


class GroupCommitAuditLog:
    """:class:`PostgresAuditLog` for busy APIs: records that arrive while a write is in flight are
    written together by the next one (one round trip and one commit for all of them, all or none),
    as PostgreSQL's own group commit does. Each ``record()`` still returns only once its own record
    is committed and raises if that record could not be written: no silent reads. When a shared
    write fails, its records are retried one by one, so one record's failure is only its own."""

    def __init__(self, pool, max_batch: int = 256) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self._pending: list[tuple[tuple, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def record(self, entry: AuditRecord) -> None:
        written = asyncio.get_running_loop().create_future()
        self._pending.append((_row(entry), written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await written

    async def _write_pending(self) -> None:
        batch: list[tuple[tuple, asyncio.Future]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
                try:
                    await self.pool.executemany(INSERT, [row for row, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each waiting request learns its own outcome
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                    else:
                        for row, written in batch:
                            try:
                                await self.pool.execute(INSERT, *row)
                            except Exception as one:  # noqa: BLE001
                                _settle(written, one)
                            else:
                                _settle(written, None)
                else:
                    for _, written in batch:
                        _settle(written, None)
        except asyncio.CancelledError:  # shutting down: nobody waits forever
            for _, written in batch + self._pending:
                written.cancel()
            self._pending = []
            raise


def _settle(written: asyncio.Future, error: BaseException | None) -> None:
    if written.done():  # the request went away; its record is written all the same
        return
    if error is None:
        written.set_result(None)
    else:
        written.set_exception(error)
