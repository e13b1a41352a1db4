"""The FHIR ingest's outbox relay: the platform's :class:`flk.events.outbox.OutboxRelay` over
``ingest.outbox`` onto ``ehr.visits.v1``. The event id is the row's (one per fact, see adapters/store.py)."""
from __future__ import annotations

from typing import Any

from flk.events.acls import KafkaUse
from flk.events.outbox import OutboxRelay
from services.ingest.adapters.store import OUTBOX_TABLE


def ingest_relay(pool: Any, producer: Any, source: str, topic_prefix: str = "", batch: int = 1000,
                 probe: Any = None) -> OutboxRelay:
    relay = OutboxRelay(pool, producer, OUTBOX_TABLE, source, lambda row: row["event_id"], topic_prefix, batch)
    if probe is not None:
        relay.probe = probe
    return relay


#: what the gateway publishes (services/ingest/domain/versions.py decides which)
PUBLISHED_EVENT_TYPES = ("visit.recorded.v1", "visit.cancelled.v1")


def kafka_use() -> KafkaUse:
    """What the gateway does on Kafka (its ACLs, `flk kafka acls`): it writes the EHRs' visit topic as
    one of the EHRs (the registry's writer), and nothing else; it consumes nothing."""
    return KafkaUse("ingest", writes_as="ehr", produces=PUBLISHED_EVENT_TYPES)
