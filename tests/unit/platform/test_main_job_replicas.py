"""`flk run --replicas`: how many processes of each service, and each replica's own name, port and data directory."""
from __future__ import annotations

from datetime import date

import pytest

from tools.mainjob.job import JobConfig, MainJob, parse_replicas

pytestmark = pytest.mark.unit


def test_one_number_scales_every_service_and_a_list_names_them():
    assert parse_replicas("3") == {"continuity": 3, "listing": 3, "notifier": 3}
    assert parse_replicas("continuity=3,listing=2") == {"continuity": 3, "listing": 2, "notifier": 1}
    assert parse_replicas(" continuity=3, listing=2, notifier=2 ") == {"continuity": 3, "listing": 2, "notifier": 2}


@pytest.mark.parametrize("bad", ["0", "ingest=2", "continuity", "continuity=x", "continuity=9", "listing=0"])
def test_a_replica_count_that_cannot_run_is_refused(bad):
    with pytest.raises(ValueError):
        parse_replicas(bad)


def _job(tmp_path, replicas):
    return MainJob(JobConfig(bootstrap="127.0.0.1:1", database_url="postgresql://x@127.0.0.1/x", state_dir=tmp_path,
                             end_date=date(2026, 6, 30), limit_people=100, replicas=replicas, demo_sinks=False),
                   echo=lambda _: None)


def _data_dir(service) -> str:
    return service.args[service.args.index("--data-dir") + 1]


def test_every_replica_has_its_own_name_port_data_directory_and_stable_replica_name(tmp_path):
    job = _job(tmp_path, parse_replicas("continuity=3,listing=2,notifier=2"))
    continuity = job._continuity_all()
    processes = continuity + [job._listing(k) for k in range(2)] + [job._notifier(k) for k in range(2)]
    names = [p.name for p in processes]
    assert names == ["continuity", "continuity-0", "continuity-1", "continuity-2", "listing", "listing-1",
                     "notifier", "notifier-1"]
    assert len({p.ready_url.split("/")[2] for p in processes}) == len(processes)  # host:port
    assert len({p.env["FLK_REPLICA_NAME"] for p in continuity}) == 4
    assert len({_data_dir(p) for p in continuity}) == 4
    # the region worker reads every partition in the default group and writes the changelog, the events and
    # the snapshots; the serving replicas split the changelog's partitions in their own group and follow it
    # (one writer of the changelog and of the output topic: two processing groups would both write them)
    region, *serving = continuity
    assert "FLK_CONTINUITY_GROUP_ID" not in region.env and "FLK_CONTINUITY_SNAPSHOT_ENABLED" not in region.env
    assert "FLK_CONTINUITY_FOLLOW_CHANGELOG" not in region.env
    assert all(p.env["FLK_CONTINUITY_GROUP_ID"] == "continuity.replicas"
               and p.env["FLK_CONTINUITY_SNAPSHOT_ENABLED"] == "false"
               and p.env["FLK_CONTINUITY_FOLLOW_CHANGELOG"] == "true" for p in serving)


def test_one_replica_each_runs_as_before_but_as_a_static_member(tmp_path):
    job = _job(tmp_path, {})
    [worker] = job._continuity_all()
    assert worker.name == "continuity" and worker.env["FLK_CONTINUITY_HTTP_PORT"] == "8082"
    assert "FLK_CONTINUITY_GROUP_ID" not in worker.env and worker.env["FLK_REPLICA_NAME"] == "continuity"
    assert _data_dir(worker) == str(tmp_path / "continuity")
    assert job._listing().name == "listing" and job._notifier().env["FLK_REPLICA_NAME"] == "notifier-0"
