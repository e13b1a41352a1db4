"""`flk infra prune` deletes what tests, benchmarks and fresh runs left, never the region's own."""
from __future__ import annotations

from flk.events.registry import registry
from tools.infra.prune import region_topics, stale_databases, stale_topics


def test_prefixed_topics_are_stale_and_the_registry_topics_stay():
    own = sorted(region_topics(registry()))
    left = ["t0123456789.ehr.visits.v1", "bench1a2b3c4d.listing.commands.v1.dlq", "dbg12334.naive-patients-changelog"]
    assert stale_topics([*own, *left], registry()) == sorted(left)


def test_kafkas_internal_topics_are_never_stale():
    assert stale_topics(["__consumer_offsets", "__transaction_state", "__share_group_state"], registry()) == []


def test_a_kept_fresh_run_keeps_its_topics_and_database():
    topics = ["runabc12345.ehr.visits.v1", "runfff00000.ehr.visits.v1"]
    assert stale_topics(topics, registry(), keep_runs=("abc12345",)) == ["runfff00000.ehr.visits.v1"]
    databases = ["flk_run_abc12345", "flk_run_fff00000"]
    assert stale_databases(databases, "flk", keep_runs=("abc12345",)) == ["flk_run_fff00000"]


def test_only_throwaway_databases_are_stale():
    names = ["flk", "postgres", "template0", "template1", "flk_test_0a1b2c", "flk_bench_99", "flk_rel_1",
             "flk_run_2", "flk_production_copy", "region_vastmanland"]
    assert stale_databases(names, "flk") == ["flk_bench_99", "flk_rel_1", "flk_run_2", "flk_test_0a1b2c"]


def test_the_main_database_stays_even_with_a_throwaway_looking_name():
    assert stale_databases(["flk_test_main"], "flk_test_main") == []
