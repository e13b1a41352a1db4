"""Hostile input on the real broker: valid-looking events from the JSON Schemas mixed with garbage,
published to the input topics of the running consumers. Every bad message must be in a DLQ with a
reason, every good one processed (counted), and no service may crash or restart.

The suite runs FLK_RELIABILITY_HOSTILE_EVENTS messages (default 2 000); the figure in docs/reliability.md is
the full 10 000: `FLK_RELIABILITY_HOSTILE_EVENTS=10000 pytest tests/integration/reliability/test_hostile_input.py -s`.
"""
from __future__ import annotations

import collections
import os
import re

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from flk.events.producer import new_producer
from services.continuity.entrypoints.worker import input_topics as continuity_topics
from services.listing.bootstrap import command_topics, fact_topics
from services.notifier.adapters.inbound import CONSUMED_EVENT_TYPES as NOTIFIER_TYPES
from services.notifier.bootstrap import consumed_topics as notifier_topics

from reliability_deployment import ready, running_deployment
from hostile_events import generate
from reliability_support import committed_vs_end, dead_letters, read_topics, wait_until

N = int(os.environ.get("FLK_RELIABILITY_HOSTILE_EVENTS", "2000"))
#: a dead-letter reason that means the handler broke (retried, then given up), not a refusal
BUG = re.compile(r"handler failed|Error\b|Exception\b")

#: consumer name in the DLQ headers -> (service, consumer group suffix, the registry topics it reads)
CONSUMERS = {
    "listing-commands": ("listing", "listing.commands", command_topics()),
    "listing-facts": ("listing", "listing.facts", fact_topics()),
    "continuity-worker": ("continuity", "continuity", tuple(continuity_topics())),
    "notifier": ("notifier", "notifier", tuple(notifier_topics())),
}


async def _metric_sum(url: str, name: str) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(url)).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


async def test_every_bad_event_is_dead_lettered_with_a_reason_every_good_one_processed_and_nothing_crashes(
        infra, tmp_path):
    topics = sorted({t for _, _, ts in CONSUMERS.values() for t in ts})
    # what each consumer dead-lettered among the VALID events as a handler failure (a finding, not a
    # refusal with a reason): the listing service, too, must refuse odd but schema-valid facts with a reason
    handler_failures: dict[str, list] = {}
    async with running_deployment(infra, tmp_path) as d:
        import time
        t0 = time.monotonic()
        messages = generate(N, topics)  # while the services start
        t1 = time.monotonic()
        await ready(d)
        t2 = time.monotonic()
        producer = new_producer(infra.kafka_bootstrap, client_id="hostile")
        await producer.start()
        try:
            futures = [await producer.send(d.prefix + m.topic, key=m.key, value=m.value, headers=list(m.headers))
                       for m in messages]
            placed = [await f for f in futures]
        finally:
            await producer.stop()
        where = [(md.topic, md.partition, md.offset) for md in placed]
        t3 = time.monotonic()

        for name, (_, group, ts) in CONSUMERS.items():
            async def caught_up(group=group, ts=ts) -> bool:
                committed, end = await committed_vs_end(infra.kafka_bootstrap, d.prefix + group,
                                                        [d.prefix + t for t in ts])
                return committed == end
            await wait_until(caught_up, timeout_s=60 + N / 50, interval_s=1.0, what=f"{name} to consume everything")
            if name == "listing-facts":  # the listing service's own output must be out before the others are done
                async def outbox_drained() -> bool:
                    rows = await d.fetch("SELECT count(*) AS n FROM listing.outbox WHERE published_at IS NULL")
                    return rows[0]["n"] == 0
                await wait_until(outbox_drained, timeout_s=60, what="the listing outbox to drain")

        t4 = time.monotonic()
        print(f"generate {t1-t0:.1f}s ready {t2-t1:.1f}s publish {t3-t2:.1f}s consume {t4-t3:.1f}s")
        letters = await dead_letters(infra.kafka_bootstrap, d.prefix)
        by_consumer = collections.defaultdict(list)
        for letter in letters:
            by_consumer[letter.consumer].append(letter)

        figures = {}
        for name, (service, _, ts) in CONSUMERS.items():
            mine = [(m, w) for m, w in zip(messages, where) if m.topic in ts]
            expected_bad = {w for m, w in mine if not m.good}
            seen = [letter.source for letter in by_consumer[name]]
            reasons = {letter.source: letter.reason for letter in by_consumer[name]}
            # a schema-valid event may be refused on domain grounds (the listing service's "unusable
            # date") and dead-lettered with that reason; a handler that breaks on one is a finding
            refused = [(m, reasons[w]) for m, w in mine if m.good and w in reasons]
            handler_failures[name] = [(m.event_type, reason, m.value.decode("utf-8", "replace")[:300])
                                      for m, reason in refused if BUG.search(reason)]
            assert expected_bad <= set(seen), f"{name}: bad events missing from its DLQ"
            assert len(seen) == len(set(seen)), f"{name}: an event dead-lettered twice"
            assert all(letter.reason for letter in by_consumer[name]), "every dead letter says why"
            figures[name] = {"inputs": len(mine), "bad_dead_lettered": len(expected_bad),
                             "good": len(mine) - len(expected_bad),
                             "good_refused_with_reason": len(refused) - len(handler_failures[name]),
                             "good_dead_lettered_as_handler_failure": len(handler_failures[name]),
                             "top_refusals": collections.Counter(re.sub(r"[0-9]", "#", r[:60])
                                                                 for _, r in refused).most_common(3)}
        for name in CONSUMERS:
            assert handler_failures[name] == [], f"{name} broke on valid events: {handler_failures[name][:5]}"

        # the good ones were processed: counted by the services themselves
        # what the listing service published itself (its decisions on the valid commands) is input too
        ours = set(where)
        published = [r for r in await read_topics(infra.kafka_bootstrap, [d.prefix + "listing.events.v1"])
                     if (r.topic, r.partition, r.offset) not in ours]
        by_listing = [(dict(r.headers)["ce_type"].decode().removeprefix("se.flk."), dict(r.headers)["ce_id"].decode())
                      for r in published]
        good_continuity = figures["continuity-worker"]["good"] + len(by_listing)
        assert await _metric_sum(d.services["continuity"].metrics_url,
                                 "flk_continuity_events_processed_total") == good_continuity
        distinct_notifier = {m.event_id for m in messages
                             if m.good and m.topic in CONSUMERS["notifier"][2] and m.event_type in NOTIFIER_TYPES}
        distinct_notifier |= {event_id for event_type, event_id in by_listing if event_type in NOTIFIER_TYPES}
        conn = await asyncpg.connect(d.dsn)
        try:
            inbox = await conn.fetchval("SELECT count(*) FROM notifier.inbox")
        finally:
            await conn.close()
        assert inbox == len(distinct_notifier), "each distinct good event handled once by the notifier"

        for service in d.services.values():
            assert service.alive and service.starts == 1, f"{service.name} crashed or restarted"
        for name in ("continuity", "notifier"):
            assert "Traceback" not in d.services[name].log(), f"{name} logged a crash"

    kinds = collections.Counter(m.kind for m in messages)
    print(f"\nhostile input: {len(messages)} messages published ({sum(not m.good for m in messages)} bad, "
          f"{sum(m.good for m in messages)} good incl. {kinds['duplicate']} duplicates); per consumer: {figures}; "
          f"notifier inbox {inbox} distinct events; {len(by_listing)} events published by the listing service; "
          f"kinds: {dict(kinds)}")

