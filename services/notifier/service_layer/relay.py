"""The outbox relay: publishes committed outbox rows to Kafka (``make_record``) and marks them.

At-least-once: a crash between the broker's acknowledgement and the UPDATE publishes the rows
again; their event ids are deterministic, so consumers' inboxes drop the duplicates. Rows are
taken in id order with ``FOR UPDATE SKIP LOCKED`` (one batch at a time per relay).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from flk.events.envelope import make_record
from flk.events.producer import publish_many
from services.notifier.adapters.clock import Clock
from services.notifier.adapters.metrics import NotifierProbe, NullProbe


@dataclass
class OutboxRelay:
    pool: object
    producer: object  # aiokafka producer
    clock: Clock
    source: str
    topic_prefix: str = ""
    batch: int = 500
    probe: NotifierProbe = field(default_factory=NullProbe)

    async def publish_pending(self) -> int:
        """Publish one batch; the number published (0: nothing pending)."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, event_id, event_type, data, event_time FROM notifier.outbox "
                    "WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    self.batch,
                )
                if not rows:
                    return 0
                records = [
                    make_record(r["event_type"], json.loads(r["data"]), source=self.source,
                                event_id=r["event_id"], time=r["event_time"])
                    for r in rows
                ]
                await publish_many(self.producer, records, self.topic_prefix)
                await conn.execute("UPDATE notifier.outbox SET published_at = $2 WHERE id = ANY($1::bigint[])",
                                   [r["id"] for r in rows], self.clock.now())
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["event_type"]] = counts.get(r["event_type"], 0) + 1
        for event_type, n in counts.items():
            self.probe.published(event_type, n)
        return len(rows)

    async def publish_all(self) -> int:
        total = 0
        while (n := await self.publish_pending()):
            total += n
            if n < self.batch:
                break
        return total
