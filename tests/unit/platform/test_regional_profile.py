"""The `flk` command gives the notifier the fast-vårdkontakt bands of the listing service's own profile
(FLK_LISTING_PROFILE), so a region names its profile once and the notifier imports no listing rules."""
from __future__ import annotations

import json
from datetime import date

import pytest

from services.listing.domain.policy import KALMAR_V1, NATIONAL_V1
from services.notifier.settings import NotifierSettings
from tools.regional_profile import ProfileMismatch, derive_notifier_environment, fast_vardkontakt_rub_bands

pytestmark = pytest.mark.unit
DAY = date(2026, 6, 1)


def test_the_kalmar_profile_and_no_other_gives_the_notifier_the_fast_vardkontakt_bands():
    assert fast_vardkontakt_rub_bands("kalmar", DAY) == frozenset({4, 5})
    for name in ("national", "vastmanland", "kronoberg"):
        assert fast_vardkontakt_rub_bands(name, DAY) == frozenset()
    assert KALMAR_V1.rub_high_need_requires_fast_vardkontakt and not NATIONAL_V1.rub_high_need_requires_fast_vardkontakt


def test_the_notifier_reads_the_listing_services_own_profile_variable(monkeypatch):
    environ = {"FLK_LISTING_PROFILE": "kalmar"}
    derive_notifier_environment(environ, DAY)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert NotifierSettings().care_policy.fast_vardkontakt_rub_bands == frozenset({4, 5})
    with pytest.raises(ValueError):
        derive_notifier_environment({"FLK_LISTING_PROFILE": "no-such-region"}, DAY)


def test_bands_set_by_hand_that_disagree_with_the_profile_stop_the_command():
    with pytest.raises(ProfileMismatch, match="disagrees with FLK_LISTING_PROFILE=kalmar"):
        derive_notifier_environment({"FLK_LISTING_PROFILE": "kalmar", "FLK_NOTIFIER_FAST_VARDKONTAKT_RUB_BANDS": "[]"}, DAY)
    agreeing = {"FLK_LISTING_PROFILE": "kalmar", "FLK_NOTIFIER_FAST_VARDKONTAKT_RUB_BANDS": "[5, 4]"}
    derive_notifier_environment(agreeing, DAY)
    assert json.loads(agreeing["FLK_NOTIFIER_FAST_VARDKONTAKT_RUB_BANDS"]) == [5, 4]


def test_without_a_named_profile_the_notifier_keeps_its_own_default():
    environ: dict[str, str] = {}
    derive_notifier_environment(environ, DAY)
    assert environ == {}
