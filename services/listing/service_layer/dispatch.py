"""One entry for every consumed message, from Kafka or REST: pick the handler, run it, retry it
when a concurrent transaction got in the way, and tell the probe.

A conflict (serialisation failure, deadlock, or a unique/exclusion constraint tripped by a
concurrent transaction — e.g. the same command arriving by REST and Kafka at once) rolls the
transaction back; the retry sees the winner's rows (and its inbox row: a repeated command then
answers what the first one did). The constraints are the guarantee; retrying is only politeness.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date, datetime

from services.listing.adapters.metrics import ListingProbe, NullListingProbe
from services.listing.service_layer.handlers import (
    COMMAND_HANDLERS,
    FACT_HANDLERS,
    Deps,
    Handler,
    InvalidMessage,
    Message,
    Outcome,
)

ALL_HANDLERS: Mapping[str, Handler] = {**COMMAND_HANDLERS, **FACT_HANDLERS}

#: dates the rules can compute with (L5 looks 12 months back, L6 a day ahead)
FIRST_YEAR, LAST_YEAR = 1900, 2199
_DATE_SUFFIXES = ("_date", "_on", "_from", "_to", "_at")


def check_values(data: Mapping[str, object]) -> None:
    """Refuse what the contract allows but the register cannot hold: a NUL character in a text
    (PostgreSQL text cannot store it) and dates the rules cannot compute with. The reason names the
    field, never the value."""
    for name, value in data.items():
        if _has_nul(value):
            raise InvalidMessage(f"{name} contains a NUL character")
        if not isinstance(value, str) or not name.endswith(_DATE_SUFFIXES):
            continue
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else date.fromisoformat(value)
        except ValueError:
            continue  # not a date field after all; the contract checked the formats
        if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
            raise InvalidMessage(f"{name} must be between the years {FIRST_YEAR} and {LAST_YEAR}")


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _refusals() -> tuple[type[BaseException], ...]:
    """PostgreSQL refusing the data itself (a CHECK, NOT NULL, a value out of range, a trigger that
    keeps periods closed): valid against the contract, never storable — not a bug to retry."""
    import asyncpg

    return (asyncpg.CheckViolationError, asyncpg.NotNullViolationError, asyncpg.DataError, asyncpg.RaiseError)


def _why(exc: BaseException) -> str:
    """Where the register refused it, without values (no patient data in DLQ reasons)."""
    constraint = getattr(exc, "constraint_name", None)
    table = getattr(exc, "table_name", None)
    sqlstate = getattr(exc, "sqlstate", None) or "?"
    if constraint:
        return f"constraint {constraint}" + (f" on {table}" if table else "")
    if sqlstate.startswith("22"):
        return f"a value out of range or malformed, SQLSTATE {sqlstate}"
    if sqlstate == "P0001":
        return "a recorded period can only be closed, not moved or reopened"
    return f"SQLSTATE {sqlstate}"


def _conflicts() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (asyncpg.SerializationError, asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError,
            asyncpg.ExclusionViolationError)


async def handle_message(msg: Message, deps: Deps, probe: ListingProbe | None = None,
                         attempts: int = 5, handlers: Mapping[str, Handler] = ALL_HANDLERS) -> Outcome:
    """Handle one message to its outcome. Raises InvalidMessage (never handleable), KeyError for an
    unknown type, or the last conflict after ``attempts`` tries."""
    probe = probe or NullListingProbe()
    handler = handlers.get(msg.message_type)
    if handler is None:
        raise InvalidMessage(f"no handler for message type {msg.message_type}")
    check_values(msg.data)
    conflicts = _conflicts()
    started = time.perf_counter()
    refused = _refusals()
    for attempt in range(1, attempts + 1):
        try:
            outcome = await handler(msg, deps)
            break
        except conflicts:
            if attempt == attempts:
                raise
            probe.conflict_retried(msg.message_type)
        except refused as exc:  # deterministic: the same message would fail the same way every time
            raise InvalidMessage(f"the register cannot hold this message ({_why(exc)})") from None
    reason = outcome.rejection["reason_code"] if outcome.rejection else None
    status = "replayed" if outcome.replayed else outcome.status
    probe.decided(msg.message_type, status, reason, time.perf_counter() - started)
    return outcome
