"""Leak scan: a small simulated region (`flk simulate --preset small`) runs through the listing
service, the continuity worker and the notifier (alerts by email to aiosmtpd and Teams cards to a
local sink); then every output that must not hold patient identifiers is scanned:

- the services' logs (their captured stdout/stderr),
- metric names and labels (`/metrics` of each service),
- dead-letter payloads (key, value, headers),
- emails and Teams cards,

for personnummer and samordningsnummer (10- and 12-digit forms, with or without '-'/'+', checked for a
real date and the Luhn digit; and every person id of the simulated region verbatim) and patient keys
(`pk1_…`; allowed in DLQ payloads only: they are pseudonymous, docs/threat-model.md). The simulated
region has no names at all (P2: no name or address is ever stored or sent), so there are no names to
find; the scan for person ids is what catches a re-identification leak.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone

import asyncpg
import httpx

from flk.events.envelope import make_record
from flk.events.producer import new_producer
from flk.security.pseudonym import InvalidPersonId, parse_person_id
from flk.security.tokens import Role
from tools.simulator.generate import Simulation
from services.notifier.adapters.secrets import env_var_for
from services.notifier.service_layer.routing import build_routing, set_routing
from tests.integration.notifier.notifier_harness import SmtpSink, TeamsSink
from tests.support.builders import a_visit

from reliability_deployment import ready, running_deployment
from reliability_support import bearer, dead_letters, free_port, token, wait_until

PEOPLE = 300
END = date.today() - timedelta(days=1)
TEAMS_REF = "teams-reliability"

PATIENT_KEY = re.compile(r"pk1_[a-z2-7]{26}")
PERSON_ID_LIKE = re.compile(r"(?<![0-9])(?:[0-9]{8}[-+]?[0-9]{4}|[0-9]{6}[-+]?[0-9]{4})(?![0-9])")


def person_ids_in(text: str) -> list[str]:
    """Substrings that are valid personnummer or samordningsnummer (date and Luhn digit checked)."""
    found = []
    for match in PERSON_ID_LIKE.findall(text):
        try:
            parse_person_id(match)
        except (InvalidPersonId, ValueError):
            continue
        found.append(match)
    return found


def test_the_person_id_scanner_finds_every_form_and_ignores_other_numbers():
    text = ("a 19121212-1212 b 191212121212 c 121212-1212 d 1212121212 e 19121272-1219 (samordningsnummer) "
            "f 121212+1212 g 1795459419 (unix time) h 2026-03-01 i 19121212-1213 (wrong Luhn) j 123456789012")
    assert person_ids_in(text) == ["19121212-1212", "191212121212", "121212-1212", "1212121212", "19121272-1219",
                                   "121212+1212"]


def findings(where: str, text: str, person_ids: set[str], keys_allowed: bool) -> list[str]:
    out = [f"{where}: person id {m!r}" for m in person_ids_in(text)]
    out += [f"{where}: simulated person id {p!r}" for p in person_ids if p in text]
    if not keys_allowed:
        out += [f"{where}: patient key {m!r}" for m in set(PATIENT_KEY.findall(text))]
    return out


def region(people: int) -> tuple[list[str], set[str], list[str]]:
    """The simulated region's unit ids, every person id in it (12- and 10-digit forms), its patient keys."""
    units, ids, keys = [], set(), []
    for item in Simulation("small", seed=42, end_date=END, limit_people=people).stream():
        if item.event_type == "care_unit.contracted.v1":
            units.append(item.data["care_unit_id"])
        elif item.event_type == "sim.extract_row":
            pnr = item.data["personnummer"].replace("-", "")
            ids |= {pnr, f"{pnr[:8]}-{pnr[8:]}", f"{pnr[2:8]}-{pnr[8:]}"}
        elif item.event_type == "person.registered.v1":
            keys.append(item.data["patient_key"])
    return units, ids, keys


async def publish_region_month_by_month(bootstrap: str, prefix: str) -> None:
    """The simulated region as the main job replays it: per month its register facts first, consumed
    by the listing service, then its commands and visits. (Published all at once, the listing
    service's commands consumer can overtake its facts consumer and reject listings of persons whose
    population record it has not read yet — then no care gap stays open and nothing is alerted.)"""
    from flk.events.lag import consumer_lag
    from tools.mainjob.job import monthly_chunks
    from tools.simulator.sinks import publish

    sim = Simulation("small", seed=42, end_date=END, limit_people=PEOPLE)

    async def facts_consumed() -> bool:
        lags = await consumer_lag(bootstrap, [prefix + "listing.facts"])
        return bool(lags and lags[0].partitions > 0 and lags[0].lag == 0)

    for facts, visits, commands in monthly_chunks(sim.stream()):
        rest = visits + (commands or [])  # (None: a piece of a month, its commands come with its last piece)
        if facts:
            await publish(sim, bootstrap, prefix, items=iter(facts))
            await wait_until(facts_consumed, timeout_s=60, interval_s=0.2, what="the listing service's facts")
        if rest:
            await publish(sim, bootstrap, prefix, items=iter(rest))


async def test_a_simulated_region_leaks_no_person_id_or_patient_key_into_logs_metrics_dlq_emails_or_teams(
        infra, tmp_path):
    units, person_ids, keys = region(PEOPLE)
    assert units and len(person_ids) > 3 * PEOPLE // 2
    smtp, teams = SmtpSink(free_port()), TeamsSink(free_port())
    smtp.start()
    await teams.start()
    try:
        env = {"notifier": {"FLK_NOTIFIER_SMTP_PORT": str(smtp.port), env_var_for(TEAMS_REF): teams.url},
               "continuity": {"as_of": END.isoformat()}}
        async with running_deployment(infra, tmp_path, env=env) as d:
            await ready(d)
            pool = await asyncpg.create_pool(d.dsn, min_size=1, max_size=2)
            try:
                for unit in units:
                    await set_routing(pool, build_routing(unit, "Vårdcentralen", email_to=["vc@example.se"],
                                                          teams_webhook_secret_ref=TEAMS_REF, mode="immediate",
                                                          quiet_hours=None), "test", datetime.now(timezone.utc))
            finally:
                await pool.close()
            await publish_region_month_by_month(d.bootstrap, d.prefix)
            # an EHR adapter's broken messages too (a field the contract does not know): dead letters to scan
            producer = new_producer(d.bootstrap, client_id="broken-ehr")
            await producer.start()
            try:
                for n, key in enumerate(keys[:5]):
                    good = make_record("visit.recorded.v1", a_visit(patient_key=key, visit_id=f"broken-{n}"),
                                       source="urn:test")
                    await producer.send_and_wait(d.prefix + good.topic, key=good.key, headers=good.headers,
                                                 value=json.dumps({**json.loads(good.value), "note": "x"}).encode())
            finally:
                await producer.stop()

            async def alerted() -> bool:
                return len(smtp.received) >= 1 and len(teams.accepted) >= 1
            await wait_until(alerted, timeout_s=90, interval_s=0.5, what="alerts by email and Teams")

            async with httpx.AsyncClient(timeout=10) as client:
                # staff read patients as they would from the worklist (API reads must not log who was read)
                admin = bearer(token(d.settings, Role.LISTING_ADMIN, subject="leak-scan-admin"))
                for key in keys[:5]:
                    await client.get(f"{d.url('listing')}/patients/{key}", headers=admin)
                    await client.get(f"{d.url('listing')}/patients/{key}/history", headers=admin)
                    await client.get(f"{d.url('continuity')}/patients/{key}/continuity", headers=admin)
                for unit in units:
                    await client.get(f"{d.url('listing')}/units/{unit}/lists", headers=admin)
                    await client.get(f"{d.url('notifier')}/units/{unit}/care-gaps/summary", headers=admin)
                metrics = {name: (await client.get(s.metrics_url)).text for name, s in d.services.items()}
            async def all_dead_letters():
                found = await dead_letters(d.bootstrap, d.prefix)
                return found if len([x for x in found if x.consumer == "continuity-worker"]) >= 5 else None
            letters = await wait_until(all_dead_letters, timeout_s=30, what="the broken visits in the DLQ")
            for s in d.services.values():
                assert s.alive, f"{s.name} died:\n{s.log()[-2000:]}"
        logs = {name: s.log() for name, s in d.services.items()}
    finally:
        smtp.stop()
        await teams.stop()

    assert "/patients/<redacted>" in logs["listing"], "the patient reads were logged (redacted), so the scan saw them"
    problems = []
    for name, text in logs.items():
        problems += findings(f"log of {name}", text, person_ids, keys_allowed=False)
    for name, text in metrics.items():
        problems += findings(f"metrics of {name}", text, person_ids, keys_allowed=False)
    for letter in letters:
        text = " ".join([(letter.key or b"").decode("utf-8", "replace"), (letter.value or b"").decode("utf-8", "replace"),
                         *(v.decode("utf-8", "replace") for v in letter.headers.values())])
        problems += findings(f"dead letter on {letter.topic}", text, person_ids, keys_allowed=True)
    for mail in smtp.received:
        problems += findings("email", mail.raw.decode("utf-8", "replace") + mail.text, person_ids, keys_allowed=False)
    for request in teams.requests:
        problems += findings("Teams card", json.dumps(request.body, ensure_ascii=False), person_ids, keys_allowed=False)
    print(f"\nleak scan: {sum(len(t) for t in logs.values())} log bytes, "
          f"{sum(len(t) for t in metrics.values())} metric bytes, {len(letters)} dead letters, "
          f"{len(smtp.received)} emails, {len(teams.requests)} Teams cards scanned; {len(problems)} findings")
    assert problems == [], "\n".join(sorted(set(problems))[:50])
