"""The gauges the operations alerts read where the services had none (deploy/prometheus/alerts.yml):
counts and ages only, labelled by channel at most."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from services.listing.adapters.metrics import PrometheusListingProbe
from services.notifier.adapters.metrics import PrometheusProbe


def test_pending_deliveries_are_exported_per_channel_and_zero_for_a_channel_with_none():
    probe = PrometheusProbe(CollectorRegistry())

    probe.pending_deliveries({"email": (3, 1250.0)})

    text = generate_latest(probe.registry).decode()
    assert 'flk_notifier_deliveries_pending{channel="email"} 3.0' in text
    assert 'flk_notifier_oldest_pending_delivery_age_seconds{channel="email"} 1250.0' in text
    assert 'flk_notifier_deliveries_pending{channel="teams"} 0.0' in text
    assert 'flk_notifier_oldest_pending_delivery_age_seconds{channel="teams"} 0.0' in text


def test_a_channel_whose_deliveries_went_out_drops_back_to_zero():
    probe = PrometheusProbe(CollectorRegistry())

    probe.pending_deliveries({"teams": (1, 900.0)})
    probe.pending_deliveries({})

    assert 'flk_notifier_oldest_pending_delivery_age_seconds{channel="teams"} 0.0' in \
        generate_latest(probe.registry).decode()


def test_the_oldest_parked_command_is_exported_with_the_wait_it_is_measured_against():
    registry = CollectorRegistry()
    probe = PrometheusListingProbe(registry)

    probe.parked_oldest(4000.0, 3600.0)

    text = generate_latest(registry).decode()
    assert "flk_listing_parked_oldest_age_seconds 4000.0" in text
    assert "flk_listing_parked_wait_limit_seconds 3600.0" in text


def test_the_notifier_exports_its_consumer_groups_lag():
    probe = PrometheusProbe(CollectorRegistry())

    probe.group_lag("notifier", 2500)

    assert 'flk_consumer_group_lag_records{group="notifier"} 2500.0' in generate_latest(probe.registry).decode()
