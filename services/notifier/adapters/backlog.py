"""The notifier's backlog, reported by `/readyz`: events written to the outbox and not yet published,
open gaps at routed units that no alert announced yet, and deliveries still pending.

The announced gaps are the alerts' ``gap_ids`` unnested: a hash anti-join, linear in gaps and alerts.
Written as ``g.gap_id = ANY (a.gap_ids)`` it was a nested loop over every open gap and every alert: 4 s
a call at region size, which the main job's settle made once a second (docs/benchmarks.md).
"""
from __future__ import annotations

_BACKLOG = """
SELECT (SELECT count(*) FROM notifier.outbox WHERE published_at IS NULL) AS outbox,
       (SELECT count(*) FROM notifier.care_gap g JOIN notifier.unit_routing r USING (care_unit_id)
         WHERE g.resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM notifier.alert a CROSS JOIN LATERAL unnest(a.gap_ids) AS u(gap_id)
                           WHERE u.gap_id = g.gap_id)) AS gaps_unannounced,
       (SELECT count(*) FROM notifier.alert_delivery WHERE status = 'pending') AS deliveries_pending
"""


async def notifier_backlog(pool) -> dict[str, int]:
    row = await pool.fetchrow(_BACKLOG)
    return {"outbox": row["outbox"], "gaps_unannounced": row["gaps_unannounced"],
            "deliveries_pending": row["deliveries_pending"]}
