"""How certain a continuity goal figure is: 95 % intervals of a mean and of the change between two dates.

A region's or unit's continuity figure is a mean of per-patient COC values over a cohort of
eligible patients, so it is an estimate: with ~200 patients it can move ±10 % by chance, with
~60 000 by well under ±1 %. The goals (G2: +20 %, G4: "a significant increase") are judged on
the change between a baseline date and now, with its interval.

Method: the **delta method on the log of the ratio of means** (the change is ``now / baseline - 1``):

* one mean: ``m ± z·s/√n``;
* two independent cohorts (the cross-section: everyone eligible at each date)::

      var(log R) ≈ s1² / (n1·m1²) + s0² / (n0·m0²)

* the same patients at both dates (the panel), with the covariance of their paired values::

      var(log R) ≈ (s1²/m1² + s0²/m0² − 2·cov/(m1·m0)) / n

and the interval ``exp(log R ± z·√var) − 1`` (asymmetric, never below −100 %).

Why not a bootstrap: the delta method needs only n, mean and SD per snapshot row (and the
per-patient pairs for the panel), so PostgreSQL computes it for every region, unit, doctor and
date (``continuity.goal_comparison``, ``continuity.goal_series``) and Grafana can draw it. A mean
of bounded values (COC ∈ [0, 1]) over at least :data:`MIN_COHORT` patients is close to normal; the
interval procedure is checked by simulation (tests: no effect → significant in about 5 % of
samples; a real +20 % effect in a region-sized cohort → detected). Below :data:`MIN_COHORT` the
verdict is ``too_few_patients`` rather than a number that looks precise.

This module is the reference implementation; the SQL functions compute the same formulas and a
test compares them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Z95",
    "MIN_COHORT",
    "Moments",
    "Interval",
    "moments",
    "mean_interval",
    "change_interval",
    "panel_change_interval",
    "verdict",
]

#: two-sided 95 % normal quantile
Z95 = 1.959963984540054
#: below this many patients in either cohort, no interval is trusted (verdict too_few_patients)
MIN_COHORT = 30


@dataclass(frozen=True, slots=True)
class Moments:
    """n, mean and sample standard deviation of a cohort's values."""

    n: int
    mean: float | None
    sd: float | None  #: sample SD (n - 1); None for n < 2


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def moments(values: Iterable[float]) -> Moments:
    """The moments of a cohort's values (Welford's algorithm: stable for long cohorts)."""
    n, mean, m2 = 0, 0.0, 0.0
    for x in values:
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    if n == 0:
        return Moments(0, None, None)
    return Moments(n, mean, math.sqrt(m2 / (n - 1)) if n > 1 else None)


def mean_interval(m: Moments, z: float = Z95) -> Interval | None:
    """``mean ± z·sd/√n``; None without a mean or an SD."""
    if m.mean is None or m.sd is None or m.n < 2:
        return None
    half = z * m.sd / math.sqrt(m.n)
    return Interval(m.mean, m.mean - half, m.mean + half)


def _ratio_interval(log_ratio: float, variance: float, z: float) -> Interval:
    half = z * math.sqrt(max(variance, 0.0))
    return Interval(math.exp(log_ratio) - 1, math.exp(log_ratio - half) - 1, math.exp(log_ratio + half) - 1)


def change_interval(baseline: Moments, now: Moments, z: float = Z95) -> Interval | None:
    """The relative change ``now/baseline - 1`` of two independent cohorts' means, with its interval."""
    if (baseline.mean is None or now.mean is None or baseline.sd is None or now.sd is None
            or baseline.mean <= 0 or now.mean <= 0):
        return None
    variance = now.sd ** 2 / (now.n * now.mean ** 2) + baseline.sd ** 2 / (baseline.n * baseline.mean ** 2)
    return _ratio_interval(math.log(now.mean / baseline.mean), variance, z)


def panel_change_interval(pairs: Sequence[tuple[float, float]], z: float = Z95) -> Interval | None:
    """The relative change of the same patients' mean, from ``(baseline value, now value)`` pairs."""
    n = len(pairs)
    if n < 2:
        return None
    m0 = sum(b for b, _ in pairs) / n
    m1 = sum(a for _, a in pairs) / n
    if m0 <= 0 or m1 <= 0:
        return None
    s00 = sum((b - m0) ** 2 for b, _ in pairs) / (n - 1)
    s11 = sum((a - m1) ** 2 for _, a in pairs) / (n - 1)
    s01 = sum((b - m0) * (a - m1) for b, a in pairs) / (n - 1)
    variance = (s11 / m1 ** 2 + s00 / m0 ** 2 - 2 * s01 / (m1 * m0)) / n
    return _ratio_interval(math.log(m1 / m0), variance, z)


def verdict(target: float | None, change: Interval | None, *, baseline: Moments, now: Moments,
            comparable: bool) -> str | None:
    """Whether a goal is met, judged on the change's interval, never on its point estimate.

    In order: None without a target; ``no_data`` without both means; ``incomplete_window`` when
    the two windows are not both complete and of equal length; ``too_few_patients`` when either
    cohort is smaller than :data:`MIN_COHORT`; ``no_data`` without an interval. Then ``met`` when
    the interval's lower bound reaches the target (for a target of 0, "a significant increase":
    lies above zero), ``not_met`` when its upper bound is below the target (for 0: at or below
    zero), otherwise ``inconclusive``.
    """
    if target is None:
        return None
    if baseline.mean is None or now.mean is None:
        return "no_data"
    if not comparable:
        return "incomplete_window"
    if min(baseline.n, now.n) < MIN_COHORT:
        return "too_few_patients"
    if change is None:
        return "no_data"
    if target == 0:
        if change.low > 0:
            return "met"
        return "not_met" if change.high <= 0 else "inconclusive"
    if change.low >= target:
        return "met"
    return "not_met" if change.high < target else "inconclusive"
