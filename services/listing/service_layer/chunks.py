"""Commands from Kafka in chunks: one PostgreSQL transaction per consumed chunk, the same handlers.

A chunk (the valid commands of a poll, arrival order) is cut into *rounds*: round k holds the
k-th command of every person, so a round never has two commands of one person and a person's
commands are decided in order, each round seeing the rows the earlier rounds wrote. Per round the
:class:`ChunkRepository` locks the persons and reads what the commands need in a few set-based
statements; the handlers (the very functions a single command or a REST call runs) decide one
command after another against it; the planned rows are written with one ``executemany`` per
statement. State, outbox and inbox rows of the whole chunk commit together — a crash loses or
repeats nothing (the inbox by ``command_id`` answers a redelivered command with its first outcome).

What the chunk does not handle is *left over*, to be handled one at a time afterwards (the
consumer's ``handle``: conflict retries, dead-letter with a reason): a command that fails in its
handler (taken back, the others go on) and every later command of the same person in the chunk,
so a person's commands still apply in order. If the database refuses the chunk (a constraint, a
deadlock, a conflict with a concurrent REST call), it rolls back and the exception goes to the
consumer, which handles the whole chunk one command at a time.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from services.listing.adapters.chunk_repository import ChunkRepository, Wants
from services.listing.adapters.metrics import ListingProbe, NullListingProbe
from services.listing.domain import events as ev
from services.listing.domain.model import months_before
from services.listing.service_layer.dispatch import check_values
from services.listing.service_layer.handlers import (
    COMMAND_HANDLERS,
    Deps,
    Handler,
    Message,
    Outcome,
    effective_date,
)
from services.listing.service_layer.unit_of_work import ChunkCommandScope

#: commands that name a doctor by practitioner id (resolved to the doctor's list)
_BY_PRACTITIONER = frozenset({"fast_lakarkontakt.assign.v1", "fast_lakarkontakt.end.v1"})


@dataclass
class ChunkResult:
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # by the message's index in the chunk
    leftover: list[int] = field(default_factory=list)  # indices to handle one at a time, arrival order


def patient_key_of(msg: Message) -> str | None:
    key = msg.data.get("patient_key") if isinstance(msg.data, Mapping) else None
    return key if isinstance(key, str) else None


def rounds_of(messages: Sequence[Message], handlers: Mapping[str, Handler]) -> tuple[list[list[int]], list[int]]:
    """Round k = the k-th command of each person (arrival order); the messages no handler of the
    chunk takes (and the later ones of their person) are left over."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    leftover: list[int] = []
    blocked: set[str] = set()
    for i, msg in enumerate(messages):
        key = patient_key_of(msg)
        if key is None or key in blocked or msg.message_type not in handlers:
            leftover.append(i)
            if key is not None:
                blocked.add(key)
            continue
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds, leftover


def wants_of(messages: Sequence[Message], deps: Deps) -> Wants:
    """What a round's commands will read, from their data (a guess that misses costs a query)."""
    keys, ids, units, lists, by_doctor = [], [], [], [], []
    since: date | None = None
    for msg in messages:
        d = msg.data
        keys.append(d["patient_key"])
        ids.append(msg.message_id)
        if isinstance(d.get("care_unit_id"), str):
            units.append(d["care_unit_id"])
        try:
            on = effective_date(d, deps)
            policy = deps.policy(on)
        except Exception:  # noqa: BLE001 - the handler meets the same problem and answers it
            continue
        first = months_before(on, policy.l5_window_months + 1)
        since = first if since is None or first < since else since
        if isinstance(d.get("list_id"), str) and d["list_id"]:
            lists.append(d["list_id"])
        elif msg.message_type in _BY_PRACTITIONER and isinstance(d.get("practitioner_id"), str) \
                and isinstance(d.get("care_unit_id"), str):
            by_doctor.append((d["practitioner_id"], d["care_unit_id"], on))
    return Wants(patient_keys=keys, message_ids=ids, unit_ids=units, list_ids=lists, doctor_lists=by_doctor,
                 changes_since=since)


async def handle_chunk(messages: Sequence[Message], deps: Deps, probe: ListingProbe | None = None,
                       handlers: Mapping[str, Handler] = COMMAND_HANDLERS) -> ChunkResult:
    """Handle a chunk of commands in one transaction; see the module doc. Raises (after rolling
    back) when the database refuses the chunk."""
    probe = probe or NullListingProbe()
    rounds, leftover = rounds_of(messages, handlers)
    result = ChunkResult()
    decided: list[tuple[Message, Outcome, list[ev.Event]]] = []
    seconds: dict[int, float] = {}
    blocked: set[str] = set()
    if rounds:
        conn = await deps.pool.acquire()
        try:
            tx = conn.transaction()
            await tx.start()
            try:
                repo = ChunkRepository(conn)
                scope = ChunkCommandScope(repo)
                chunk_deps = replace(deps, uow_factory=lambda: scope,
                                     on_decided=lambda m, o, e: decided.append((m, o, e)))
                for indices in rounds:
                    await repo.prefetch(wants_of([messages[i] for i in indices], deps))
                    for i in indices:
                        msg = messages[i]
                        key = patient_key_of(msg)
                        if key in blocked:
                            leftover.append(i)
                            continue
                        repo.begin_command()
                        started = time.perf_counter()
                        try:
                            check_values(msg.data)
                            result.outcomes[i] = await handlers[msg.message_type](msg, chunk_deps)
                        except Exception:  # noqa: BLE001 - handled again alone, where it is retried or dead-lettered
                            repo.discard_command()
                            if decided and decided[-1][0] is msg:
                                decided.pop()
                            leftover.append(i)
                            blocked.add(key)
                            continue
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


def report_chunk(messages: Sequence[Message], deps: Deps, probe: ListingProbe, result: ChunkResult, decided: list,
                 seconds: dict[int, float], leftover: list[int]) -> ChunkResult:
    """After a chunk's transaction committed: its decisions to the caller's hook, its outcomes to the
    metrics, and what is left over to handle one at a time (commands and facts alike)."""
    for msg, outcome, events in decided:
        deps.on_decided(msg, outcome, events)
    for i, outcome in result.outcomes.items():
        reason = outcome.rejection["reason_code"] if outcome.rejection else None
        status = "replayed" if outcome.replayed else outcome.status
        probe.decided(messages[i].message_type, status, reason, seconds.get(i, 0.0))
    result.leftover = sorted(leftover)
    return result
