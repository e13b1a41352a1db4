"""The region's unit register as the continuity worker needs it: which unit is a filial of which
main unit (seed 004: a filial is "en underenhet till huvudenheten"; a visit there counts as a visit at
the main unit for SKR's continuity measure).

``care_unit.contracted.v1`` is keyed by unit, not by patient, so it is not co-partitioned with the
worker's inputs: every worker reads the whole topic (a global table), first to its end before it
processes anything, then as it grows. The latest fact of a unit is its state.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flk.events.contracts import ContractViolation
from flk.events.envelope import EnvelopeError, read_record
from flk.events.registry import registry

log = logging.getLogger(__name__)

UNIT_FACT = "care_unit.contracted.v1"


def apply_unit_facts(families: Mapping[str, str], facts: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Filial → main unit after these register facts (in order; the latest fact of a unit wins)."""
    out = dict(families)
    for data in facts:
        unit, main = data.get("care_unit_id"), data.get("main_unit_id")
        if not unit:
            continue
        if main and main != unit:
            out[unit] = main
        else:
            out.pop(unit, None)
    return out


class UnitRegisterReader:
    """Reads the unit register topic from its start on its own consumer (no group: every worker
    reads every partition)."""

    def __init__(self, bootstrap: str, topic_prefix: str = "", client_options: Mapping[str, Any] | None = None,
                 client_id: str = "continuity-unit-register") -> None:
        self.bootstrap = bootstrap
        self.prefix = topic_prefix
        self.topic = topic_prefix + registry().topic_for(UNIT_FACT).name
        self.client_options = dict(client_options or {})
        self.client_id = client_id
        self.families: dict[str, str] = {}
        self.consumer: Any = None

    async def start(self, timeout_s: float = 30.0) -> dict[str, str]:
        """Assign every partition from the start and read up to the end offsets it had now."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                         client_id=self.client_id, auto_offset_reset="earliest",
                                         **self.client_options)
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        if not tps:
            log.warning("unit register topic %s not found: no filial relations", self.topic)
            return self.families
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        ends = await self.consumer.end_offsets(tps)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while [tp for tp, end in ends.items() if await self.consumer.position(tp) < end]:
            if asyncio.get_running_loop().time() > deadline:
                log.warning("unit register not read to its end within %g s; going on with what was read", timeout_s)
                break
            await self.poll(timeout_ms=500)
        return self.families

    async def poll(self, timeout_ms: int = 0) -> bool:
        """Read what arrived; True when a filial relation changed."""
        if self.consumer is None or not self.consumer.assignment():
            return False
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=10_000)
        facts: list[dict[str, Any]] = []
        for records in batches.values():
            for r in records:
                try:
                    envelope = read_record(r.topic[len(self.prefix):], r.key, r.value, r.headers or ())
                except (EnvelopeError, ContractViolation) as exc:  # the listing service dead-letters it
                    log.warning("unit register record skipped: %s", exc)
                    continue
                if envelope.event_type == UNIT_FACT:
                    facts.append(envelope.data)
        if not facts:
            return False
        before = self.families
        self.families = apply_unit_facts(before, facts)
        return self.families != before

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None
