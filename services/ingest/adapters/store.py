"""PostgreSQL: the remembered Encounters and the outbox, changed in one transaction.

Concurrent requests about the same Encounter are serialised by transaction-scoped advisory locks on
(sender, Encounter id), taken in key order (no deadlock between two bundles)."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, AsyncIterator

from flk.events.envelope import derived_id
from flk.security.audit import AuditRecord, record_in_transaction
from services.ingest.domain.mapping import VisitFacts
from services.ingest.domain.versions import StoredEncounter

OUTBOX_TABLE = "ingest.outbox"


def lock_key(sender: str, encounter_id: str) -> int:
    digest = hashlib.blake2b(f"fhir\x1f{sender}\x1f{encounter_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def event_id(event_type: str, data: dict) -> str:
    """One id per fact (a visit's recording, a visit's cancellation): queued at most once, and consumers'
    inboxes drop a re-publication."""
    return derived_id("ingest", event_type, data["visit_id"])


class Transaction:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def lock(self, sender: str, encounter_ids: Iterable[str]) -> None:
        keys = sorted({lock_key(sender, e) for e in encounter_ids})
        if keys:
            await self.conn.execute(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) s", keys)

    async def load(self, sender: str, encounter_ids: Iterable[str]) -> dict[str, StoredEncounter]:
        rows = await self.conn.fetch(
            "SELECT encounter_id, version_id, last_updated, content_hash, kind, visit_id, visit "
            "FROM ingest.encounter WHERE sender = $1 AND encounter_id = ANY($2::text[])", sender, list(set(encounter_ids)))
        return {r["encounter_id"]: StoredEncounter(
            sender, r["encounter_id"], r["version_id"], r["last_updated"], r["content_hash"], r["kind"], r["visit_id"],
            VisitFacts(**json.loads(r["visit"])) if r["visit"] is not None else None) for r in rows}

    async def save(self, encounters: Iterable[StoredEncounter], now: datetime) -> None:
        rows = [(e.sender, e.encounter_id, e.version_id, e.last_updated, e.content_hash, e.kind, e.visit_id,
                 json.dumps(e.visit.as_dict(), ensure_ascii=False) if e.visit else None, now) for e in encounters]
        if rows:
            await self.conn.executemany(
                "INSERT INTO ingest.encounter AS e (sender, encounter_id, version_id, last_updated, content_hash, kind, "
                "visit_id, visit, first_seen_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $9) "
                "ON CONFLICT (sender, encounter_id) DO UPDATE SET version_id = EXCLUDED.version_id, "
                "last_updated = EXCLUDED.last_updated, content_hash = EXCLUDED.content_hash, kind = EXCLUDED.kind, "
                "visit_id = EXCLUDED.visit_id, visit = EXCLUDED.visit, updated_at = EXCLUDED.updated_at", rows)

    async def queue(self, events: Iterable[tuple[str, dict]], now: datetime) -> None:
        rows = [(event_id(t, d), t, json.dumps(d, ensure_ascii=False), now) for t, d in events]
        if rows:
            await self.conn.executemany(
                "INSERT INTO ingest.outbox (event_id, event_type, data, event_time) VALUES ($1, $2, $3::jsonb, $4) "
                "ON CONFLICT (event_id) DO NOTHING", rows)

    async def audit(self, entries: list[AuditRecord]) -> None:
        await record_in_transaction(self.conn, entries)


class EncounterStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                yield Transaction(conn)
