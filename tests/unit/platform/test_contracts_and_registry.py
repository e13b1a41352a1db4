"""The event contracts and the topic registry are consistent, and the fast validator agrees
with the jsonschema reference implementation."""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator

from flk.events.contracts import ContractViolation, contracts
from flk.events.registry import parse_registry, registry

ROOT = Path(__file__).resolve().parents[3]


def test_every_schema_is_valid_draft_2020_12():
    c = contracts()
    for event_type in c.event_types:
        Draft202012Validator.check_schema(c.schema(event_type))
        assert c.schema(event_type)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_event_type_has_exactly_one_topic_and_every_schema_a_topic():
    assert sorted(registry().event_types) == sorted(contracts().event_types)


def test_patient_topics_are_co_partitioned_and_keyed_by_patient_key():
    reg = registry()
    patient_topics = [t for t in reg.topics if t.is_patient_topic]
    assert len(patient_topics) >= 6
    assert {t.partitions for t in patient_topics} == {reg.patient_partitions}
    for topic in patient_topics:
        for event_type in topic.events:
            assert "patient_key" in contracts().schema(event_type)["required"], event_type


def test_every_topic_key_is_a_required_field_of_its_events():
    for topic in registry().topics:
        for event_type in topic.events:
            assert topic.key in contracts().schema(event_type)["required"], (topic.name, event_type)


def test_registry_refuses_an_event_type_on_two_topics():
    doc = {"patient_partitions": 6, "topics": [
        {"name": "a", "key": "patient_key", "writer": "x", "events": ["e.v1"]},
        {"name": "b", "key": "patient_key", "writer": "y", "events": ["e.v1"]},
    ]}
    with pytest.raises(ValueError, match="in both"):
        parse_registry(doc)


def test_registry_refuses_a_patient_topic_with_another_partition_count():
    doc = {"patient_partitions": 6, "topics": [
        {"name": "a", "key": "patient_key", "writer": "x", "events": ["e.v1"], "partitions": 3},
    ]}
    with pytest.raises(ValueError, match="partitions"):
        parse_registry(doc)


def test_no_topic_name_literal_outside_the_registry():
    names = [t.name for t in registry().topics]
    pattern = re.compile("|".join(re.escape(f'"{n}') + "|" + re.escape(f"'{n}") for n in names))
    offenders = []
    for folder in ("flk", "services", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("event_type", contracts().event_types)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_fast_validator_agrees_with_the_reference_on_generated_events(event_type, data):
    c = contracts()
    reference = c.reference_validator(event_type)
    instance = data.draw(_strategy(event_type))
    reference_ok = reference.is_valid(instance)
    try:
        c.validate(event_type, instance)
        fast_ok = True
    except ContractViolation:
        fast_ok = False
    assert fast_ok == reference_ok
    # and a mutation that breaks a required field is refused by both
    if instance and c.schema(event_type)["required"]:
        broken = dict(instance)
        broken.pop(c.schema(event_type)["required"][0])
        assert not reference.is_valid(broken)
        with pytest.raises(ContractViolation):
            c.validate(event_type, broken)


@cache
def _strategy(event_type: str):
    c = contracts()
    return from_schema(_inline_refs(c.schema(event_type), c.shared))


def _inline_refs(node, shared):
    """hypothesis-jsonschema cannot follow remote $refs: inline the shared definitions."""
    if isinstance(node, dict):
        if "$ref" in node:
            uri, _, pointer = node["$ref"].partition("#")
            target = shared[f"https://schemas.flk.se/events/{uri}"]
            for part in pointer.strip("/").split("/"):
                target = target[part]
            return _inline_refs(target, shared)
        return {k: _inline_refs(v, shared) for k, v in node.items() if k not in ("$id", "$schema", "x-cloudevents-type")}
    if isinstance(node, list):
        return [_inline_refs(v, shared) for v in node]
    return node


def test_dead_letter_topics_keep_letters_30_days_not_for_ever():
    from flk.events.admin import registry_configs

    configs = registry_configs(registry())
    for spec in registry().topics:
        if not spec.is_changelog:
            assert configs[spec.dlq][1]["retention.ms"] == str(30 * 24 * 3600 * 1000)
        assert configs[spec.name][1]["retention.ms"] == str(spec.retention_ms)


def test_raw_visits_are_kept_30_days_and_a_region_may_override_it():
    from flk.events.admin import registry_configs

    assert registry_configs(registry())["ehr.visits.v1"][1]["retention.ms"] == str(30 * 24 * 3600 * 1000)
    longer = registry_configs(registry(), "p.", {"ehr.visits.v1": 60 * 24 * 3600 * 1000})
    assert longer["p.ehr.visits.v1"][1]["retention.ms"] == str(60 * 24 * 3600 * 1000)
    assert longer["p.ehr.visits.v1.dlq"][1]["retention.ms"] == str(30 * 24 * 3600 * 1000)
    with pytest.raises(ValueError, match="not in the registry"):
        registry_configs(registry(), "", {"ehr.visitz.v1": 1})


def test_the_continuity_tables_changelog_is_compacted_written_by_continuity_and_has_no_dead_letters():
    from flk.events.admin import registry_configs

    spec = registry().changelog("continuity", "patients")
    configs = registry_configs(registry())
    assert configs[spec.name][1] == {"retention.ms": "-1", "cleanup.policy": "compact"}
    assert spec.dlq not in configs
    assert spec.partitions == registry().patient_partitions  # co-partitioned with the worker's inputs
    with pytest.raises(ValueError, match="compacted"):
        parse_registry({"patient_partitions": 6, "topics": [
            {"name": "c.v1", "key": "patient_key", "writer": "x", "events": [], "changelog_of": "t"}]})


def test_a_topic_may_set_its_own_dead_letter_retention():
    doc = {"patient_partitions": 6, "dlq_retention_ms": 1000, "topics": [
        {"name": "a.v1", "key": "patient_key", "writer": "x", "events": ["a.happened.v1"]},
        {"name": "b.v1", "key": "patient_key", "writer": "x", "events": ["b.happened.v1"], "dlq_retention_ms": 5}]}
    reg = parse_registry(doc)
    assert [t.dlq_retention_ms for t in reg.topics] == [1000, 5]


def test_an_existing_topic_is_changed_only_when_its_configs_differ_and_then_gets_all_of_them():
    from flk.events.admin import configs_to_change

    wanted = {"retention.ms": "2592000000", "cleanup.policy": "delete"}
    assert configs_to_change(wanted, {"retention.ms": "2592000000", "cleanup.policy": "delete",
                                      "segment.bytes": "1"}) is None
    assert configs_to_change(wanted, {"retention.ms": "-1", "cleanup.policy": "delete"}) == wanted
