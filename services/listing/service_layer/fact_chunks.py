"""Register facts from Kafka in chunks: one PostgreSQL transaction per consumed chunk, the same handlers.

The facts of a chunk (arrival order) go one after another through the very handlers a single fact
runs (service_layer/handlers.py) against a :class:`FactChunkRepository`: the chunk's persons are
locked and read, and the inbox read, in one statement each; the rows of the frequent facts that
decide nothing (a person registered or changed, a RUB assessment) are planned and written set-based;
a fact that needs the database (a P1 decision, a SÄBO period, a roster or unit fact) runs direct
under a savepoint, after the planned rows it may read (its person's; all of them for a roster or
unit fact). State, outbox and inbox rows of the chunk
commit together: a crash loses or repeats nothing (a redelivered fact meets its inbox row).

What the chunk does not handle is *left over*, to be handled one at a time afterwards (the
consumer's ``handle``: conflict retries, dead-letter with a reason): a fact whose handler fails
(taken back, the others go on) and every later fact of the same person (or role, or unit) in the
chunk, so they still apply in order. If the database refuses the planned rows themselves, the
chunk rolls back and the exception goes to the consumer, which handles the chunk one fact at a time.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from services.listing.adapters.fact_chunk_repository import FactChunkRepository
from services.listing.adapters.metrics import ListingProbe, NullListingProbe
from services.listing.domain import events as ev
from services.listing.service_layer.chunks import ChunkResult, report_chunk
from services.listing.service_layer.dispatch import check_values
from services.listing.service_layer.handlers import FACT_HANDLERS, Deps, Handler, Message, Outcome

#: the facts whose handlers lock their person first (the chunk locks them all at once, in key order)
PERSON_LOCKING_FACTS = frozenset({"person.registered.v1", "person.updated.v1", "residence.recorded.v1"})


def order_key(msg: Message) -> str | None:
    """What a fact must stay in order with: its person, else its role, else its unit."""
    data = msg.data if isinstance(msg.data, Mapping) else {}
    for field, prefix in (("patient_key", ""), ("role_id", "role:"), ("care_unit_id", "unit:")):
        value = data.get(field)
        if isinstance(value, str):
            return prefix + value
    return None


def persons_to_lock(messages: Sequence[Message]) -> list[str]:
    return sorted({k for m in messages if m.message_type in PERSON_LOCKING_FACTS
                   and isinstance(k := m.data.get("patient_key") if isinstance(m.data, Mapping) else None, str)})


class ChunkFactScope:
    """One fact's share of the chunk's transaction: the handler sees the chunk's repository; the
    chunk commits once, and takes a failing fact back itself."""

    def __init__(self, repo: FactChunkRepository) -> None:
        self.repo = repo
        self.conn = repo.conn

    async def __aenter__(self) -> ChunkFactScope:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        return None


async def handle_fact_chunk(messages: Sequence[Message], deps: Deps, probe: ListingProbe | None = None,
                            handlers: Mapping[str, Handler] = FACT_HANDLERS) -> ChunkResult:
    """Handle a chunk of facts in one transaction; see the module doc. Raises (after rolling back)
    when the database refuses the chunk's planned rows."""
    probe = probe or NullListingProbe()
    result = ChunkResult()
    leftover: list[int] = []
    decided: list[tuple[Message, Outcome, list[ev.Event]]] = []
    seconds: dict[int, float] = {}
    blocked: set[str] = set()
    todo = []
    for i, msg in enumerate(messages):
        if msg.message_type not in handlers:
            leftover.append(i)
            if (key := order_key(msg)) is not None:
                blocked.add(key)
        else:
            todo.append(i)
    if todo:
        conn = await deps.pool.acquire()
        try:
            tx = conn.transaction()
            await tx.start()
            try:
                repo = FactChunkRepository(conn)
                await repo.prefetch(persons_to_lock([messages[i] for i in todo]),
                                    [messages[i].message_id for i in todo])
                scope = ChunkFactScope(repo)
                chunk_deps = replace(deps, uow_factory=lambda: scope,
                                     on_decided=lambda m, o, e: decided.append((m, o, e)))
                for i in todo:
                    msg = messages[i]
                    key = order_key(msg)
                    if key is not None and key in blocked:
                        leftover.append(i)
                        continue
                    repo.begin_fact(msg.data.get("patient_key") if isinstance(msg.data, Mapping) else None)
                    started = time.perf_counter()
                    try:
                        check_values(msg.data)
                        result.outcomes[i] = await handlers[msg.message_type](msg, chunk_deps)
                    except Exception:  # noqa: BLE001 - handled again alone, where it is retried or dead-lettered
                        await repo.end_fact(ok=False)
                        if repo.broken:
                            raise
                        if decided and decided[-1][0] is msg:
                            decided.pop()
                        leftover.append(i)
                        if key is not None:
                            blocked.add(key)
                        continue
                    await repo.end_fact(ok=True)
                    seconds[i] = time.perf_counter() - started
                await repo.flush()
            except BaseException:
                try:
                    await tx.rollback()
                except Exception:  # noqa: BLE001 - the connection is gone; the original error matters
                    pass
                raise
            await tx.commit()
        finally:
            await deps.pool.release(conn)
    return report_chunk(messages, deps, probe, result, decided, seconds, leftover)
