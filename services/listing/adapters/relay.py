"""The listing service's outbox relay: the platform's :class:`flk.events.outbox.OutboxRelay` over
``listing.outbox``. Event ids are uuid5 of the outbox row id, so publishing a row again (a crash
between the broker's acknowledgement and the UPDATE) gives the same id and consumers' inboxes
drop the duplicate.
"""
from __future__ import annotations

from typing import Any

from flk.events.envelope import derived_id
from flk.events.outbox import OutboxRelay
from services.listing.adapters.metrics import ListingProbe, NullListingProbe


def outbox_event_id(row_id: int) -> str:
    return derived_id("listing.outbox", row_id)


def listing_relay(pool: Any, producer: Any, source: str, topic_prefix: str = "", batch: int = 1000,
                  probe: ListingProbe | None = None) -> OutboxRelay:
    return OutboxRelay(pool, producer, "listing.outbox", source, lambda row: outbox_event_id(row["id"]),
                       topic_prefix, batch, probe or NullListingProbe())
