"""Kafka commands that wait for their person (migration 0003, ``listing.parked_command``).

Commands and population facts arrive on separate topics, read by separate consumers: nothing
orders a listing request after the registration of its person. A command whose person the register
does not know yet is *parked* instead of being rejected ``person_unknown`` at once, and so is every
later command of a person who has parked commands (a person's commands keep their order). The
runtime's release loop hands parked commands to the ordinary handlers, oldest first per person,
once the person is known — or once they have waited the grace period, when the handler rejects
them ``person_unknown`` (L4) as before, with the usual rejection event.

Nothing is lost or done twice: parking is one statement keyed by ``command_id`` (a redelivered
command is parked once, and a command already in the inbox is never parked); a released command is
handled (its inbox row committed) before its parked row is deleted, so a crash in between hands it
to the handler again, which answers from the inbox. REST commands are not parked: the caller gets
the answer now.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from flk.events.envelope import Envelope
from services.listing.service_layer.handlers import Message

_PARK = """
WITH c AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
        WITH ORDINALITY AS c(command_id, patient_key, message_type, data, event_id, event_source, event_time, n)
), waiting AS (
    SELECT c.* FROM c
    WHERE NOT EXISTS (SELECT 1 FROM listing.inbox i WHERE i.message_id = c.command_id)
      AND (NOT EXISTS (SELECT 1 FROM listing.person p WHERE p.patient_key = c.patient_key)
           OR EXISTS (SELECT 1 FROM listing.parked_command q WHERE q.patient_key = c.patient_key))
), parked AS (
    INSERT INTO listing.parked_command (command_id, patient_key, message_type, data, event_id, event_source,
                                        event_time)
    SELECT command_id, patient_key, message_type, data::jsonb, event_id, event_source, event_time
    FROM waiting ORDER BY n
    ON CONFLICT (command_id) DO NOTHING
    RETURNING command_id
)
SELECT command_id, command_id IN (SELECT command_id FROM parked) AS new FROM waiting
"""

# the first parked command of every person who is known now or has waited long enough
_RELEASABLE = """
SELECT DISTINCT ON (q.patient_key) q.command_id, q.patient_key, q.message_type, q.data::text AS data,
       q.event_id, q.event_source, q.event_time, q.parked_at
FROM listing.parked_command q
WHERE EXISTS (SELECT 1 FROM listing.person p WHERE p.patient_key = q.patient_key)
   OR q.parked_at <= $1
ORDER BY q.patient_key, q.seq
LIMIT $2
"""


@dataclass(frozen=True)
class ParkedCommand:
    message: Message
    envelope: Envelope
    parked_at: datetime


def _key(msg: Message) -> str | None:
    key = msg.data.get("patient_key")
    return key if isinstance(key, str) and key else None


class ParkedCommands:
    def __init__(self, pool) -> None:
        self.pool = pool

    async def park_waiting(self, entries: Sequence[tuple[Message, Envelope]]) -> dict[str, bool]:
        """Park the commands whose person is unknown or has parked commands. Their command ids, each
        with True when parked now (False: an earlier delivery parked it)."""
        entries = [(m, e) for m, e in entries if _key(m) is not None]
        if not entries:
            return {}
        rows = await self.pool.fetch(
            _PARK,
            [m.message_id for m, _ in entries], [_key(m) for m, _ in entries], [m.message_type for m, _ in entries],
            [orjson.dumps(m.data).decode() for m, _ in entries], [e.id for _, e in entries],
            [e.source for _, e in entries], [e.time for _, e in entries],
        )
        return {r["command_id"]: r["new"] for r in rows}

    async def releasable(self, waited_since: datetime, limit: int) -> list[ParkedCommand]:
        """Per person, the oldest parked command, if the person is known or it was parked at or
        before ``waited_since``."""
        rows = await self.pool.fetch(_RELEASABLE, waited_since, limit)
        out = []
        for r in rows:
            data = orjson.loads(r["data"])
            out.append(ParkedCommand(
                message=Message(r["command_id"], r["message_type"], data, r["parked_at"]),
                envelope=Envelope(id=r["event_id"], event_type=r["message_type"], source=r["event_source"],
                                  time=r["event_time"], key=r["patient_key"], data=data),
                parked_at=r["parked_at"]))
        return out

    async def remove(self, command_id: str) -> None:
        await self.pool.execute("DELETE FROM listing.parked_command WHERE command_id = $1", command_id)

    async def count(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM listing.parked_command")

    async def waiting(self) -> tuple[int, float]:
        """How many commands are parked, and the age in seconds of the oldest (0 when none)."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(parked_at)), 0)::float8 AS age "
            "FROM listing.parked_command")
        return row["n"], max(0.0, row["age"])
