"""The audit log: every read of patient data is recorded (who, which unit, which patient, what, when, why)."""
from __future__ import annotations

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


class PostgresAuditLog:
    """Writes audit records with an asyncpg pool. A failed write fails the request (no silent reads)."""

    def __init__(self, pool) -> None:
        self.pool = pool

    async def record(self, entry: AuditRecord) -> None:
        p = entry.principal
        await self.pool.execute(
            INSERT, entry.occurred_at, p.subject, p.role.value, sorted(p.units), entry.unit_id,
            entry.patient_key, entry.action, entry.purpose, entry.outcome, entry.request_id,
        )
