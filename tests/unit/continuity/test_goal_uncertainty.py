"""The 95 % intervals of the continuity goal figures, and the interval procedure checked by simulation.

With a known truth the procedure must behave as a 95 % interval should: with no effect the change
is "significant" in about 5 % of samples; a real +20 % effect in a region-sized cohort is detected.
"""
from __future__ import annotations

import math
import random

import pytest

from services.continuity.domain.uncertainty import (
    MIN_COHORT,
    Interval,
    Moments,
    change_interval,
    mean_interval,
    moments,
    panel_change_interval,
    verdict,
)

pytestmark = pytest.mark.unit


def coc_values(rng: random.Random, n: int, mean: float, concentration: float = 5.0) -> list[float]:
    """Per-patient COC-like values in [0, 1] with the given mean (Beta; a share of exact 0s and 1s as
    real COC has: a patient who saw one doctor only has COC 1, one who never saw the same twice 0)."""
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.10 * (1 - mean):
            out.append(0.0)
        elif u < 0.10:
            out.append(1.0)
        else:
            out.append(rng.betavariate(mean * concentration, (1 - mean) * concentration))
    return out


def test_moments_are_the_sample_mean_and_standard_deviation():
    m = moments([0.0, 0.5, 1.0])
    assert (m.n, m.mean) == (3, 0.5) and m.sd == pytest.approx(0.5)
    assert moments([]) == Moments(0, None, None)
    assert moments([0.3]).sd is None


def test_the_interval_of_a_mean_narrows_with_the_square_root_of_the_cohort():
    small = mean_interval(Moments(100, 0.4, 0.3))
    large = mean_interval(Moments(10_000, 0.4, 0.3))
    assert small.low == pytest.approx(0.4 - 1.96 * 0.03, abs=1e-4)
    assert (small.high - small.low) == pytest.approx(10 * (large.high - large.low))
    assert mean_interval(Moments(1, 0.4, None)) is None


def test_the_change_is_relative_and_its_interval_is_asymmetric_on_the_log_scale():
    c = change_interval(Moments(400, 0.40, 0.3), Moments(400, 0.48, 0.3))
    assert c.estimate == pytest.approx(0.20)
    assert c.low < 0.20 < c.high
    assert (c.high - c.estimate) > (c.estimate - c.low)  # exp of a symmetric log interval
    assert change_interval(Moments(400, 0.0, 0.0), Moments(400, 0.4, 0.3)) is None


def test_the_same_patients_change_gains_precision_from_their_correlation():
    rng = random.Random(3)
    base = coc_values(rng, 500, 0.4)
    pairs = [(b, min(1.0, max(0.0, b + rng.gauss(0.04, 0.05)))) for b in base]
    panel = panel_change_interval(pairs)
    cross = change_interval(moments(b for b, _ in pairs), moments(a for _, a in pairs))
    assert panel.estimate == pytest.approx(cross.estimate)
    assert (panel.high - panel.low) < (cross.high - cross.low) / 2


@pytest.mark.parametrize(("low", "high", "target", "expected"), [
    (0.21, 0.29, 0.20, "met"),
    (0.20, 0.29, 0.20, "met"),
    (0.12, 0.28, 0.20, "inconclusive"),  # +20 % as a point estimate is not enough
    (0.01, 0.19, 0.20, "not_met"),
    (0.01, 0.09, 0.0, "met"),            # G4: a significant increase
    (-0.03, 0.24, 0.0, "inconclusive"),
    (-0.10, -0.01, 0.0, "not_met"),
])
def test_a_goal_is_judged_on_the_changes_interval(low, high, target, expected):
    n = Moments(1000, 0.4, 0.3)
    assert verdict(target, Interval((low + high) / 2, low, high), baseline=n, now=n, comparable=True) == expected


def test_an_incomplete_window_or_a_small_cohort_gets_no_goal_verdict():
    big, small = Moments(1000, 0.4, 0.3), Moments(MIN_COHORT - 1, 0.4, 0.3)
    up = Interval(0.5, 0.3, 0.7)
    assert verdict(0.2, up, baseline=big, now=big, comparable=False) == "incomplete_window"
    assert verdict(0.2, up, baseline=small, now=big, comparable=True) == "too_few_patients"
    assert verdict(0.2, None, baseline=Moments(0, None, None), now=big, comparable=True) == "no_data"
    assert verdict(None, up, baseline=big, now=big, comparable=True) is None


def _significant_share(seeds: int, n: int, effect: float, *, panel: bool) -> float:
    hits = 0
    for seed in range(seeds):
        rng = random.Random(seed)
        if panel:  # each patient has their own level; both dates vary around it
            levels = [rng.betavariate(2, 3) for _ in range(n)]
            pairs = [(rng.betavariate(10 * m, 10 * (1 - m)),
                      min(1.0, rng.betavariate(10 * m, 10 * (1 - m)) * (1 + effect))) for m in levels]
            interval = panel_change_interval(pairs)
        else:
            interval = change_interval(moments(coc_values(rng, n, 0.4)), moments(coc_values(rng, n, 0.4 * (1 + effect))))
        hits += interval.excludes_zero
    return hits / seeds


@pytest.mark.parametrize("n", [200, 2_000])
def test_with_no_effect_about_5_percent_of_samples_look_significant(n):
    share = _significant_share(400, n, 0.0, panel=False)
    # 95 % intervals: ~5 % of samples exclude zero (20 of 400, binomial SD 4.4); 2–9 % holds by far
    assert 0.02 <= share <= 0.09, share


def test_with_no_effect_the_same_patients_comparison_is_rarely_significant():
    share = _significant_share(300, 300, 0.0, panel=True)
    assert 0.015 <= share <= 0.095, share


def test_a_real_20_percent_increase_is_detected_in_a_region_sized_cohort():
    # ~60 000 eligible patients (the region preset): the interval is about ±1 %, so +20 % is never missed
    share = _significant_share(5, 60_000, 0.20, panel=False)
    assert share == 1.0
    interval = change_interval(moments(coc_values(random.Random(9), 60_000, 0.4)),
                               moments(coc_values(random.Random(10), 60_000, 0.48)))
    assert interval.low > 0.15 and interval.high < 0.25 and math.isclose(interval.estimate, 0.2, abs_tol=0.02)


def test_a_small_cohort_cannot_tell_a_10_percent_increase_from_noise():
    """~180 eligible patients (the small preset): the interval is wider than ±10 %."""
    interval = change_interval(moments(coc_values(random.Random(1), 180, 0.4)),
                               moments(coc_values(random.Random(2), 180, 0.44)))
    assert interval.high - interval.low > 0.2
