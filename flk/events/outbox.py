"""The transactional outbox's relay, shared by every service that writes one.

A service commits its state change and the events it means in one PostgreSQL transaction (rows
``id, event_type, data, event_time`` in its ``<schema>.outbox``); this relay publishes committed
rows (``make_record``: validated, CloudEvents binary mode) and marks them published.

At-least-once: a crash between the broker's acknowledgement and the UPDATE publishes the rows
again with the same event ids (the service derives them from the row), so consumers' inboxes
drop the duplicates. Rows are taken in id order with ``FOR UPDATE SKIP LOCKED``: several relays
never publish the same row at the same time. A row that breaks its contract (a bug upstream) is
logged and kept unpublished; it never blocks the rows behind it.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from flk.events.contracts import ContractViolation
from flk.events.envelope import make_record
from flk.events.producer import publish_many

log = logging.getLogger(__name__)


class PublishedProbe(Protocol):
    def published(self, event_type: str, n: int) -> None: ...


class _NoProbe:
    def published(self, event_type: str, n: int) -> None:
        return None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class OutboxRelay:
    pool: Any  # asyncpg pool
    producer: Any  # aiokafka producer
    table: str  # e.g. 'listing.outbox' (a constant of the service, never user input)
    source: str  # CloudEvents source
    event_id_of: Callable[[Any], str]  # the row's event id (deterministic: same row, same id)
    topic_prefix: str = ""
    batch: int = 1000
    probe: PublishedProbe = field(default_factory=_NoProbe)
    clock: Callable[[], datetime] = _utc_now

    async def publish_pending(self) -> int:
        """Publish one batch; the number published (0: nothing pending)."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    f"SELECT * FROM {self.table} "  # noqa: S608 - a constant of the service
                    "WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    self.batch,
                )
                if not rows:
                    return 0
                records, sent = [], []
                for r in rows:
                    try:
                        records.append(make_record(r["event_type"], json.loads(r["data"]), source=self.source,
                                                   event_id=self.event_id_of(r), time=r["event_time"]))
                        sent.append(r)
                    except ContractViolation as exc:  # a bug upstream: keep the row, never block the others
                        log.error("outbox row %d (%s) of %s breaks its contract and stays unpublished: %s",
                                  r["id"], r["event_type"], self.table, exc)
                if not sent:
                    return 0
                await publish_many(self.producer, records, self.topic_prefix)
                await conn.execute(f"UPDATE {self.table} SET published_at = $2 WHERE id = ANY($1::bigint[])",
                                   [r["id"] for r in sent], self.clock())
        counts: dict[str, int] = {}
        for r in sent:
            counts[r["event_type"]] = counts.get(r["event_type"], 0) + 1
        for event_type, n in counts.items():
            self.probe.published(event_type, n)
        return len(sent)

    async def publish_all(self) -> int:
        """Publish until nothing is pending; the number published."""
        total = 0
        while n := await self.publish_pending():
            total += n
            if n < self.batch:
                break
        return total

    async def pending(self) -> int:
        return await self.pool.fetchval(f"SELECT count(*) FROM {self.table} WHERE published_at IS NULL")
