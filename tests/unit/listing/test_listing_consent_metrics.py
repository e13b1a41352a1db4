"""P3's metrics: the pending guardian-consent requests, those closed by outcome and the expiry sweep,
counted with bounded labels only (never a child's or a guardian's key)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from services.listing.adapters.metrics import PrometheusListingProbe
from services.listing.bootstrap import observe_decisions
from services.listing.domain import events as ev
from services.listing.domain.model import ConsentOutcome
from services.listing.domain.reasons import RejectionReason
from services.listing.service_layer.handlers import Message

pytestmark = pytest.mark.unit

CHILD, GUARDIAN = "pk1_" + "c" * 26, "pk1_" + "g" * 26


def closed(outcome: ConsentOutcome) -> ev.ListingConsentClosed:
    return ev.ListingConsentClosed(patient_key=CHILD, care_unit_id="SE2321000016-VC1", requested_on=date(2026, 1, 5),
                                   closed_on=date(2026, 1, 9), outcome=outcome)


def test_every_closed_request_is_counted_by_outcome_and_the_relay_is_still_woken():
    registry = CollectorRegistry()
    probe = PrometheusListingProbe(registry)
    woken = []
    on_decided = observe_decisions(probe, lambda *args: woken.append(args))
    msg = Message("m1", "listing.consent.v1", {"patient_key": CHILD, "guardian_key": GUARDIAN},
                  datetime.now(timezone.utc))

    on_decided(msg, None, [closed(ConsentOutcome.CONSENTED), ev.ListingRejected(
        patient_key=CHILD, care_unit_id="SE2321000016-VC1", effective_date=date(2026, 1, 9),
        reason=RejectionReason.GUARDIAN_REFUSED,
        decided_under="national@1")])
    on_decided(msg, None, [closed(ConsentOutcome.EXPIRED)])
    on_decided(msg, None, [closed(ConsentOutcome.EXPIRED)])
    on_decided(msg, None, [])

    text = generate_latest(registry).decode()
    assert 'flk_listing_guardian_consent_closed_total{outcome="consented"} 1.0' in text
    assert 'flk_listing_guardian_consent_closed_total{outcome="expired"} 2.0' in text
    assert 'outcome="refused"' not in text  # a rejection event alone is not a closed request
    assert len(woken) == 4
    assert CHILD not in text and GUARDIAN not in text


def test_the_pending_gauge_and_the_expiry_sweep_runs_and_expiries():
    registry = CollectorRegistry()
    probe = PrometheusListingProbe(registry)
    probe.consents_pending(7)
    probe.consent_sweep("ok", 3)
    probe.consent_sweep("ok", 0)
    probe.consent_sweep("failed", 0)
    probe.consents_pending(4)

    text = generate_latest(registry).decode()
    assert "flk_listing_guardian_consent_pending 4.0" in text
    assert 'flk_listing_consent_expiry_runs_total{result="ok"} 2.0' in text
    assert 'flk_listing_consent_expiry_runs_total{result="failed"} 1.0' in text
    assert "flk_listing_consent_expired_total 3.0" in text
