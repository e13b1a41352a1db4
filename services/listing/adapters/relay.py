"""The outbox relay: publishes committed outbox rows (``make_record``) and marks them published.

Event ids are uuid5 of the outbox row id, so publishing a row again (a crash between the broker's
acknowledgement and the UPDATE) gives the same id and consumers' inboxes drop the duplicate.
Rows are taken in id order with ``FOR UPDATE SKIP LOCKED``: several relays never publish the
same row at the same time.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from flk.events.contracts import ContractViolation
from flk.events.envelope import derived_id, make_record
from flk.events.producer import publish_many
from services.listing.adapters.metrics import ListingProbe, NullListingProbe


log = logging.getLogger(__name__)


def outbox_event_id(row_id: int) -> str:
    return derived_id("listing.outbox", row_id)


@dataclass
class OutboxRelay:
    pool: Any
    producer: Any  # aiokafka producer
    source: str
    topic_prefix: str = ""
    batch: int = 1000
    probe: ListingProbe = field(default_factory=NullListingProbe)

    async def publish_pending(self) -> int:
        """Publish one batch; the number published (0: nothing pending)."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, event_type, data, event_time FROM listing.outbox "
                    "WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    self.batch,
                )
                if not rows:
                    return 0
                records, sent = [], []
                for r in rows:
                    try:
                        records.append(make_record(r["event_type"], json.loads(r["data"]), source=self.source,
                                                   event_id=outbox_event_id(r["id"]), time=r["event_time"]))
                        sent.append(r)
                    except ContractViolation as exc:  # a bug upstream: keep the row, never block the others
                        log.error("outbox row %d (%s) breaks its contract and stays unpublished: %s",
                                  r["id"], r["event_type"], exc)
                if not sent:
                    return 0
                await publish_many(self.producer, records, self.topic_prefix)
                await conn.execute("UPDATE listing.outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                                   [r["id"] for r in sent])
        rows = sent
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["event_type"]] = counts.get(r["event_type"], 0) + 1
        for event_type, n in counts.items():
            self.probe.published(event_type, n)
        return len(rows)

    async def publish_all(self) -> int:
        total = 0
        while n := await self.publish_pending():
            total += n
            if n < self.batch:
                break
        return total

    async def pending(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM listing.outbox WHERE published_at IS NULL")
