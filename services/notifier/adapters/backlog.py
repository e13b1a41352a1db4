"""The notifier's backlog, reported by `/readyz`: events written to the outbox and not yet published,
open gaps at routed units that no alert announced yet, and deliveries still pending."""
from __future__ import annotations

_BACKLOG = """
SELECT (SELECT count(*) FROM notifier.outbox WHERE published_at IS NULL) AS outbox,
       (SELECT count(*) FROM notifier.care_gap g JOIN notifier.unit_routing r USING (care_unit_id)
         WHERE g.resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM notifier.alert a WHERE g.gap_id = ANY (a.gap_ids))) AS gaps_unannounced,
       (SELECT count(*) FROM notifier.alert_delivery WHERE status = 'pending') AS deliveries_pending
"""


async def notifier_backlog(pool) -> dict[str, int]:
    row = await pool.fetchrow(_BACKLOG)
    return {"outbox": row["outbox"], "gaps_unannounced": row["gaps_unannounced"],
            "deliveries_pending": row["deliveries_pending"]}
