"""The continuity worker killed with SIGKILL three times during the replay of a simulated region
ends with exactly the baseline CLI's indices on the same input: 0 visits lost, 0 counted twice.

Extends tests/integration/continuity/test_continuity_crash_recovery.py (one kill, a random scenario;
its progress and read-back helpers are reused) to three kills at about 1/4, 1/2 and 3/4 of the replay
of `flk simulate --preset small` (visits recorded and cancelled, listings and FLKs).
"""
from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys

import orjson
import pytest

from flk.events.envelope import make_record
from flk.events.producer import publish_many
from tests.integration.continuity.continuity_stream import flk_assigned, listing
import reliability_support  # noqa: F401,E402 - puts the continuity tests on sys.path first
from tests.integration.continuity.test_continuity_crash_recovery import last_indices, progress

from reliability_support import REPO, continuity_service

END = "2026-06-30"
KILLS = 3


def simulate_to_files(out) -> None:
    subprocess.run([sys.executable, "-m", "tools.cli", "simulate", "--preset", "small", "--seed", "7", "--limit-people", "2500", "--end-date",
                    END, "--to", "files", "--out", str(out), "--no-progress"], cwd=REPO, check=True,
                   capture_output=True)


def stream_records(out) -> list:
    """What the worker reads: the listing facts of LISTINGS.csv, then every visit event in order."""
    records = []
    with (out / "LISTINGS.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            records.append(listing(row["patient_id"], row["care_unit_id"], "2015-01-01"))
            if row["fast_lakarkontakt_id"]:
                records.append(flk_assigned(row["patient_id"], row["fast_lakarkontakt_id"], row["care_unit_id"]))
    with (out / "ehr.visits.v1.jsonl").open(encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            records.append(make_record(item["type"].removeprefix("se.flk."), item["data"], source="ehr/simulated"))
    return records


@pytest.mark.slow
async def test_a_worker_killed_three_times_mid_replay_of_a_simulated_region_ends_with_the_baseline_indices(
        kafka_bootstrap, topic_prefix, producer, migrated_database, tmp_path):
    simulate_to_files(tmp_path / "sim")
    records = stream_records(tmp_path / "sim")
    await publish_many(producer, records, topic_prefix)

    def worker(batch: int):
        s = continuity_service(kafka_bootstrap, topic_prefix, migrated_database, tmp_path, as_of=END,
                               store="rocksdb", batch=batch, FLK_CONTINUITY_API_ENABLED="false")
        s.base_url = None  # no API: ready when its metrics endpoint answers
        return s

    kills_mid_replay = []
    for k in range(1, KILLS + 1):
        w = worker(batch=25).start()
        try:
            while True:
                committed, end = await progress(kafka_bootstrap, topic_prefix)
                if committed >= end * k / (KILLS + 1) or not w.alive:
                    break
                await asyncio.sleep(0.05)
            assert w.alive, w.log()[-2000:]
            w.kill()
        finally:
            w.stop()
        committed, end = await progress(kafka_bootstrap, topic_prefix)
        kills_mid_replay.append(0 < committed < end)
    assert kills_mid_replay == [True] * KILLS, "every kill must hit the replay mid-way"

    w = worker(batch=2000).start()
    try:
        for _ in range(1200):
            committed, end = await progress(kafka_bootstrap, topic_prefix)
            if committed == end:
                break
            await asyncio.sleep(0.1)
        assert committed == end, w.log()[-2000:]
    finally:
        assert w.stop() == 0, "a clean stop after the replay"
    streamed = await last_indices(kafka_bootstrap, topic_prefix)

    sim = tmp_path / "sim"
    batch = subprocess.run([sys.executable, "-m", "tools.cli", "continuity", "indices", "--visits",
                            str(sim / "VISITS.csv"), "--listings", str(sim / "LISTINGS.csv"), "--as-of", END],
                           cwd=REPO, capture_output=True, check=True)
    expected = {row["patient_id"]: row for row in map(orjson.loads, batch.stdout.splitlines())}

    # the CLI reads VISITS.csv, which leaves out visits that were later cancelled: a patient whose every
    # visit was cancelled (and who is not listed) has indices in the stream (all zero) and none in the CLI
    only_streamed = set(streamed) - set(expected)
    assert all(streamed[k]["total"]["visits"] == 0 for k in only_streamed)
    assert set(expected) <= set(streamed)
    mismatches = [k for k, row in expected.items()
                  if (streamed[k]["as_of"], streamed[k]["doctor"], streamed[k]["total"])
                  != (row["as_of"], row["doctor"], row["total"])]
    visits = sum(row["total"]["visits"] for row in expected.values())
    print(f"\ncontinuity SIGKILL x{KILLS}: {len(records)} events replayed, {len(expected)} patients, "
          f"{visits} visits in the window; {len(mismatches)} patients differ from the baseline CLI")
    assert mismatches == []
