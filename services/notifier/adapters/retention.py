"""How long the notifier keeps what ties its rows to a patient (``FLK_NOTIFIER_RETENTION_DAYS``).

The notifier's state is derived: the listing register (kept by law) and the topics are the record,
so it keeps per-patient data only as long as it serves alerting. Past the retention:

* a resolved care gap loses its patient key (unit, cause, RUB band, SÄBO and dates stay for the
  reports: ``care_gap_history``, the dashboards);
* the care state of a person who died or emigrated is deleted if no gap of theirs is open;
* published outbox rows (care_gap.* events, already on Kafka) are deleted.

Open gaps and the care state of everyone else stay: they are what alerting works on.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

_FORGET_RESOLVED_GAPS = """
UPDATE notifier.care_gap SET patient_key = NULL
WHERE resolved_at < $1 AND patient_key IS NOT NULL
"""

_DELETE_STATE_OF_THOSE_GONE = """
DELETE FROM notifier.patient_care_state s
WHERE (s.state #>> '{status,deceased}' = 'true' OR s.state #>> '{status,emigrated}' = 'true')
  AND (s.state #>> '{status,effective_at}')::timestamptz < $1
  AND NOT EXISTS (SELECT 1 FROM notifier.care_gap g WHERE g.patient_key = s.patient_key AND g.resolved_at IS NULL)
"""

_DELETE_PUBLISHED_OUTBOX = "DELETE FROM notifier.outbox WHERE published_at < $1"


@dataclass(frozen=True)
class Purged:
    gaps_forgotten: int
    states_deleted: int
    outbox_deleted: int


def _count(status: str) -> int:
    return int(status.split()[-1])  # 'UPDATE 3', 'DELETE 2'


async def purge(conn, cut_off: datetime) -> Purged:
    """One transaction: what is older than ``cut_off`` goes (see the module doc)."""
    async with conn.transaction():
        gaps = _count(await conn.execute(_FORGET_RESOLVED_GAPS, cut_off))
        states = _count(await conn.execute(_DELETE_STATE_OF_THOSE_GONE, cut_off))
        outbox = _count(await conn.execute(_DELETE_PUBLISHED_OUTBOX, cut_off))
    return Purged(gaps, states, outbox)
