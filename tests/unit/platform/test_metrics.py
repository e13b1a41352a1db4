"""The shared consumer metrics carry only bounded labels."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from flk.observability.metrics import PrometheusConsumerProbe


def test_consumer_metrics_count_handled_dead_lettered_and_retried_by_bounded_labels():
    registry = CollectorRegistry()
    probe = PrometheusConsumerProbe(registry)

    probe.handled("listing", "visit.recorded.v1")
    probe.dead_lettered("listing", "ehr.visits.v1", "contract")
    probe.retried("listing", "transient")

    text = generate_latest(registry).decode()
    assert 'flk_events_handled_total{consumer="listing",event_type="visit.recorded.v1"} 1.0' in text
    assert 'flk_events_dead_lettered_total{category="contract",consumer="listing",topic="ehr.visits.v1"} 1.0' in text
    assert 'flk_events_retried_total{category="transient",consumer="listing"} 1.0' in text
    assert "pk1_" not in text


def test_consumer_group_lag_is_a_gauge_per_consumer_name():
    registry = CollectorRegistry()
    probe = PrometheusConsumerProbe(registry)

    probe.group_lag("listing-commands", 1200)
    probe.group_lag("listing-commands", 40)

    text = generate_latest(registry).decode()
    assert 'flk_consumer_group_lag_records{group="listing-commands"} 40.0' in text
