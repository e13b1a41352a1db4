"""The listing service's backlog, reported by `/readyz`: events written to the outbox and not yet
published, and Kafka commands parked until the register knows their person."""
from __future__ import annotations


async def listing_backlog(pool) -> dict[str, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM listing.outbox WHERE published_at IS NULL) AS outbox, "
        "(SELECT count(*) FROM listing.parked_command) AS parked_commands")
    return {"outbox": row["outbox"], "parked_commands": row["parked_commands"]}
