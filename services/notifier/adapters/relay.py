"""The notifier's outbox relay: the platform's :class:`flk.events.outbox.OutboxRelay` over
``notifier.outbox``, whose rows carry their event id (``uuid5`` of the gap or alert), so a
re-send after a crash has the same id and consumers' inboxes drop it.
"""
from __future__ import annotations

from flk.events.outbox import OutboxRelay
from services.notifier.adapters.clock import Clock
from services.notifier.adapters.metrics import NotifierProbe, NullProbe


def notifier_relay(pool: object, producer: object, clock: Clock, source: str, topic_prefix: str = "",
                   batch: int = 500, probe: NotifierProbe | None = None) -> OutboxRelay:
    return OutboxRelay(pool, producer, "notifier.outbox", source, lambda row: row["event_id"], topic_prefix, batch,
                       probe or NullProbe(), clock=clock.now)
