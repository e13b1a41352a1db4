"""The FHIR ingest's outbox relay: the platform's :class:`flk.events.outbox.OutboxRelay` over
``ingest.outbox`` onto ``ehr.visits.v1``. The event id is the row's (one per fact, see adapters/store.py)."""
from __future__ import annotations

from typing import Any

from flk.events.outbox import OutboxRelay
from services.ingest.adapters.store import OUTBOX_TABLE


def ingest_relay(pool: Any, producer: Any, source: str, topic_prefix: str = "", batch: int = 1000,
                 probe: Any = None) -> OutboxRelay:
    relay = OutboxRelay(pool, producer, OUTBOX_TABLE, source, lambda row: row["event_id"], topic_prefix, batch)
    if probe is not None:
        relay.probe = probe
    return relay
