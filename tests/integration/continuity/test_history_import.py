"""`flk ehr import` against the real broker and database: after importing an extract the stream worker's
indices equal the baseline CLI's for every patient; a second import changes nothing; a dry run publishes
and records nothing; the data coverage is recorded."""
from __future__ import annotations

import asyncio
import csv
import random
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from click.testing import CliRunner

from flk.settings import DEV_PSEUDONYM_KEY
from tools.simulator.generate import personnummer12
from services.continuity.adapters.metrics import CHANGED
from services.continuity.entrypoints.cli import continuity
from services.continuity.entrypoints.ehr_import import ehr

from continuity_stream import AS_OF, eventually, running_worker, service_settings

UNITS = ("SE2321000016-VCA1", "SE2321000016-VCB2")
DOCTORS = tuple(f"SE2321000016-L{i:03d}" for i in range(1, 5))
NURSES = ("SE2321000016-N001", "SE2321000016-N002")
HEADER = ("patient_id", "visit_id", "practitioner_id", "profession", "care_unit_id", "occurred_at", "contact_type",
          "cancelled_at", "cancel_reason", "source_system")


def an_extract(path: Path, patients: int = 80, seed: int = 11) -> int:
    """A region's history: personnummer for half the patients, date-only and timed visits, same-day
    visits, cancellations, other units. Returns the number of events an import publishes."""
    rng = random.Random(seed)
    first = AS_OF - timedelta(days=540)
    events = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for p in range(patients):
            patient = (personnummer12(date(1930 + p % 60, 1 + p % 12, 1 + p % 28), 100 + p) if p % 2
                       else f"pk1_{''.join(rng.choice('abcdefghijklmnopqrstuvwxyz234567') for _ in range(26))}")
            usual = rng.choice(DOCTORS)
            for v in range(rng.randint(0, 9)):
                day = first + timedelta(days=rng.randint(1, 539))
                doctor = rng.random() < 0.6
                who = (usual if rng.random() < 0.6 else rng.choice(DOCTORS)) if doctor else rng.choice(NURSES)
                when = day.isoformat() if rng.random() < 0.3 else f"{day.isoformat()}T{rng.randint(8, 16):02d}:00:00"
                cancelled = rng.random() < 0.08
                w.writerow((patient, f"V{p}-{v}", who, "läkare" if doctor else "sjuksköterska",
                            UNITS[0] if rng.random() < 0.9 else UNITS[1], when,
                            rng.choice(("besok", "telefon", "digital")),
                            (day + timedelta(days=1)).isoformat() if cancelled else "",
                            "cancelled" if cancelled else "", "cosmic"))
                events += 2 if cancelled else 1
    return events


def _env(kafka_bootstrap: str, prefix: str, dsn: str) -> dict[str, str]:
    return {"FLK_KAFKA_BOOTSTRAP": kafka_bootstrap, "FLK_TOPIC_PREFIX": prefix, "FLK_DATABASE_URL": dsn,
            "FLK_PSEUDONYM_KEY": DEV_PSEUDONYM_KEY}


async def _invoke(command, args: list[str], env: dict[str, str]):
    return await asyncio.to_thread(CliRunner().invoke, command, args, env=env)


async def _visits_on_topic(kafka_bootstrap: str, prefix: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        topic = prefix + "ehr.visits.v1"
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


async def _partitions(consumer, topic: str):
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic)


async def test_after_importing_an_extract_the_stream_equals_the_baseline_cli_and_a_second_import_changes_nothing(
        kafka_bootstrap, topic_prefix, migrated_database, tmp_path):
    path = tmp_path / "history.csv"
    expected_events = an_extract(path)
    env = _env(kafka_bootstrap, topic_prefix, migrated_database)

    imported = await _invoke(ehr, ["import", str(path), "--region-code", "19", "--batch-size", "50"], env)
    assert imported.exit_code == 0, imported.output
    assert f"{expected_events} events published to ehr.visits.v1" in imported.output
    assert "region 19: visit data complete from" in imported.output

    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database)
    async with running_worker(settings) as worker:
        await eventually(lambda: worker.processed_events >= expected_events, timeout_s=30)
        stream = {key.decode(): worker.processor.patient(key.decode())[1].to_json_dict()
                  for p in worker.store.partitions for key, _ in worker.store.items(p)}
        changed_before = CHANGED._value.get()

        again = await _invoke(ehr, ["import", str(path), "--region-code", "19"], env)
        assert again.exit_code == 0, again.output
        await eventually(lambda: worker.processed_events >= 2 * expected_events, timeout_s=30)
        await asyncio.sleep(0.5)
        stream_again = {key.decode(): worker.processor.patient(key.decode())[1].to_json_dict()
                        for p in worker.store.partitions for key, _ in worker.store.items(p)}
        assert CHANGED._value.get() == changed_before   # no indices_changed event: nothing counted twice
    assert stream_again == stream

    batch = await _invoke(continuity, ["indices", "--visits", str(path), "--as-of", AS_OF.isoformat(),
                                       "--no-progress"], env)
    assert batch.exit_code == 0, batch.output
    cli = {row.pop("patient_id"): row for row in map(orjson.loads, batch.stdout.splitlines())}
    assert set(cli) == set(stream) and len(cli) > 60
    differing = [k for k in cli if cli[k] != stream[k]]
    assert differing == [], f"{len(differing)} of {len(cli)} patients differ"
    assert sum(1 for r in cli.values() if r["doctor"]["coc"] is not None) > 20  # the comparison has substance

    conn = await asyncpg.connect(migrated_database)
    try:
        coverage = await conn.fetchrow("SELECT complete_from, source, note FROM continuity.data_coverage "
                                       "WHERE region_code = '19' AND care_unit_id = ''")
    finally:
        await conn.close()
    assert coverage["source"] == "history-import" and coverage["complete_from"] > AS_OF - timedelta(days=541)
    assert "history.csv" in coverage["note"]


async def test_a_dry_run_names_bad_rows_by_line_counts_and_publishes_and_records_nothing(
        kafka_bootstrap, topic_prefix, migrated_database, tmp_path):
    path = tmp_path / "history.csv"
    an_extract(path, patients=10)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(3, "pk1_aaaaaaaaaaaaaaaaaaaaaaaaaa,X1,SE2321000016-L001,läkare,SE2321000016-VCA1,2025-02-30,besok,,,")
    lines.insert(5, "197001019999,X2,SE2321000016-L001,läkare,SE2321000016-VCA1,2025-02-03,besok,,,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = _env(kafka_bootstrap, topic_prefix, migrated_database)

    result = await _invoke(ehr, ["import", str(path), "--region-code", "19", "--dry-run"], env)
    assert result.exit_code == 1
    assert "history.csv:4: bad occurred_at '2025-02-30'" in result.output
    assert "history.csv:6: patient_id is not a valid personnummer or samordningsnummer" in result.output
    assert "197001019999" not in result.output
    assert "2 bad rows skipped" in result.output and "nothing published, nothing recorded (dry run)" in result.output
    assert await _visits_on_topic(kafka_bootstrap, topic_prefix) == 0
    conn = await asyncpg.connect(migrated_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM continuity.data_coverage") == 0
    finally:
        await conn.close()

    # without --dry-run the good rows go, the bad ones are skipped, and the coverage is not claimed
    real = await _invoke(ehr, ["import", str(path), "--region-code", "19"], env)
    assert real.exit_code == 1 and "data coverage NOT recorded: 2 rows were skipped" in real.output
    assert await _visits_on_topic(kafka_bootstrap, topic_prefix) > 0
