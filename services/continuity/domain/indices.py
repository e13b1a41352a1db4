"""Continuity-of-care indices over a sequence of provider ids in time order.

Notation (docs/domain.md §4): N visits, n_i visits to provider i, M distinct providers.

=======  =========================================  ==================
Index    Formula                                    Undefined (None)
=======  =========================================  ==================
COC      (Σ n_i² − N) / (N (N − 1))  (Bice–Boxerman)  N < 2
UPC      max_i n_i / N  (= MFPC)                    N = 0
SECON    same-provider consecutive pairs / (N − 1)  N < 2
HHI      Σ (n_i / N)²                               N = 0
MMCI     (1 − M/(N+0.1)) / (1 − 1/(N+0.1))          N = 0
KPC      visits with the patient's FLK / N          N = 0 or no FLK
=======  =========================================  ==================

Undefined is ``None``, never 0.  Only SECON depends on the order.

The single-index functions state each formula plainly; :func:`index_set`
computes all six in one pass and is what the hot path uses.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Sequence
from typing import NamedTuple

__all__ = [
    "IndexSet",
    "index_set",
    "coc",
    "upc",
    "secon",
    "hhi",
    "mmci",
    "kpc",
]


class IndexSet(NamedTuple):
    """The indices of one counted set of visits (doctor or total)."""

    visits: int
    coc: float | None
    upc: float | None
    secon: float | None
    hhi: float | None
    mmci: float | None
    kpc: float | None
    eligible: bool

    def to_json_dict(self) -> dict[str, object]:
        """A JSON-ready dict with the field names as keys."""
        return self._asdict()


def coc(providers: Sequence[str]) -> float | None:
    """Bice–Boxerman continuity of care index."""
    n = len(providers)
    if n < 2:
        return None
    return (sum(c * c for c in Counter(providers).values()) - n) / (n * (n - 1))


def upc(providers: Sequence[str]) -> float | None:
    """Usual (most frequent) provider continuity: the top provider's share."""
    if not providers:
        return None
    return max(Counter(providers).values()) / len(providers)


def secon(providers: Sequence[str]) -> float | None:
    """Sequential continuity: share of consecutive pairs with the same provider."""
    n = len(providers)
    if n < 2:
        return None
    return sum(1 for a, b in zip(providers, providers[1:]) if a == b) / (n - 1)


def hhi(providers: Sequence[str]) -> float | None:
    """Herfindahl–Hirschman concentration of visits over providers."""
    n = len(providers)
    if n == 0:
        return None
    return sum(c * c for c in Counter(providers).values()) / (n * n)


def mmci(providers: Sequence[str]) -> float | None:
    """Modified modified continuity index."""
    n = len(providers)
    if n == 0:
        return None
    m = len(set(providers))
    return (1 - m / (n + 0.1)) / (1 - 1 / (n + 0.1))


def kpc(providers: Sequence[str], fast_lakarkontakt: Collection[str]) -> float | None:
    """Share of visits with (any of) the patient's fast läkarkontakt."""
    if not providers or not fast_lakarkontakt:
        return None
    return sum(1 for p in providers if p in fast_lakarkontakt) / len(providers)


def index_set(
    providers: Sequence[Hashable],
    fast_lakarkontakt: Collection[Hashable] = (),
    min_visits: int = 0,
) -> IndexSet:
    """All six indices of ``providers`` (time order) in one pass. The providers are any hashable ids
    (practitioner ids, or the hot path's per-patient id numbers): only their equality counts.

    ``eligible`` is ``len(providers) >= min_visits``; indices are reported
    whether or not the set is eligible.
    """
    n = len(providers)
    if n == 0:
        return IndexSet(0, None, None, None, None, None, None, min_visits <= 0)
    counts: dict[str, int] = {}
    get = counts.get
    same = 0
    previous = None
    for p in providers:
        counts[p] = get(p, 0) + 1
        if p == previous:
            same += 1
        previous = p
    values = counts.values()
    sum_sq = 0
    top = 0
    for c in values:
        sum_sq += c * c
        if c > top:
            top = c
    if fast_lakarkontakt:
        with_flk = 0
        for f in set(fast_lakarkontakt):
            with_flk += get(f, 0)
        k = with_flk / n
    else:
        k = None
    if n >= 2:
        c_o_c = (sum_sq - n) / (n * (n - 1))
        s = same / (n - 1)
    else:
        c_o_c = s = None
    m = len(counts)
    return IndexSet(
        n,
        c_o_c,
        top / n,
        s,
        sum_sq / (n * n),
        (1 - m / (n + 0.1)) / (1 - 1 / (n + 0.1)),
        k,
        n >= min_visits,
    )
