"""The FHIR ingest's backlog, reported by `/readyz`: visit events committed to the outbox and not yet
published to Kafka."""
from __future__ import annotations


async def ingest_backlog(pool) -> dict[str, int]:
    return {"outbox": await pool.fetchval("SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL")}
