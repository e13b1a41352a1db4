"""What of a unit's worklist one page shows (pure): filters, sort order and paging read from the
query string, the count summary at the top, and the links that keep the view.

Query parameters (Swedish, as the page's words; every link and form of the page carries them on):

=============  ===================================================  ==================
parameter      values                                               default
=============  ===================================================  ==================
``sortera``    ``dagar`` (days open), ``rub``, ``orsak``, ``sabo``  ``dagar``
``ordning``    ``fallande``, ``stigande``                           ``fallande``
``orsak``      a cause (``never_assigned``, ``doctor_left``, …)     all
``rub``        ``0``–``5``, ``4-5`` (high need), ``saknas``         all
``sabo``       ``ja``, ``nej``                                      all
``minst_dagar`` open at least this many days (0–3650)              all
``sida``       page number from 1 (beyond the last: the last)       ``1``
``per_sida``   ``10``, ``25``, ``50``, ``100``                      ``25``
=============  ===================================================  ==================

An unknown parameter is ignored; a known one with a value it cannot take is left at its default
and reported (``WorklistQuery.problems``), so a hand-edited link never fails the page.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from services.notifier.domain.care_gaps import GapCause
from services.notifier.domain.messages import CAUSE_TEXT
from services.notifier.domain.worklist import WorklistRow

SORTS: dict[str, str] = {"dagar": "Dagar öppen", "rub": "RUB", "orsak": "Orsak", "sabo": "SÄBO"}
ORDERS = ("fallande", "stigande")
RUB_FILTERS: dict[str, str] = {"4-5": "RUB 4–5", **{str(b): f"RUB {b}" for b in range(5, -1, -1)}, "saknas": "RUB saknas"}
SABO_FILTERS: dict[str, str] = {"ja": "Bor på SÄBO", "nej": "Bor inte på SÄBO"}
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
MAX_MIN_DAYS = 3650
#: the summary's "long-open" threshold
LONG_OPEN_DAYS = 30


@dataclass(frozen=True)
class WorklistQuery:
    sort: str = "dagar"
    order: str = "fallande"
    cause: GapCause | None = None
    rub: str | None = None  # a key of RUB_FILTERS
    sabo: bool | None = None
    min_days: int | None = None
    page: int = 1
    per_page: int = DEFAULT_PAGE_SIZE
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.cause, self.rub, self.sabo, self.min_days))

    def params(self, **changes) -> dict[str, str]:
        """The query string's parameters of this view (defaults left out), with ``changes`` applied."""
        q = replace(self, **changes) if changes else self
        out: dict[str, str] = {}
        if q.sort != "dagar":
            out["sortera"] = q.sort
        if q.order != "fallande":
            out["ordning"] = q.order
        if q.cause is not None:
            out["orsak"] = q.cause.value
        if q.rub is not None:
            out["rub"] = q.rub
        if q.sabo is not None:
            out["sabo"] = "ja" if q.sabo else "nej"
        if q.min_days is not None:
            out["minst_dagar"] = str(q.min_days)
        if q.per_page != DEFAULT_PAGE_SIZE:
            out["per_sida"] = str(q.per_page)
        if q.page != 1:
            out["sida"] = str(q.page)
        return out

    def query_string(self, **changes) -> str:
        """``?…`` for a link to this view with ``changes`` ('' for the default view)."""
        params = self.params(**changes)
        return f"?{urlencode(params)}" if params else ""

    def sort_link(self, key: str) -> str:
        """A column header's link: sort by ``key`` (the other way if already so), from page 1."""
        first = "stigande" if key == "orsak" else "fallande"  # text A–Ö, numbers the most first
        order = ("stigande" if self.order == "fallande" else "fallande") if self.sort == key else first
        return self.query_string(sort=key, order=order, page=1)


def _int(text: str, low: int, high: int) -> int | None:
    text = text.strip()
    if not text.isdigit() or len(text) > 6:
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_query(params: Mapping[str, str]) -> WorklistQuery:
    """The view a query string asks for; values it cannot take are reported and left at the default."""
    problems: list[str] = []
    q = WorklistQuery()

    def bad(name: str) -> None:
        problems.append(f"Okänt värde för {name} – det ignorerades.")

    if (v := params.get("sortera")) is not None:
        if v in SORTS:
            q = replace(q, sort=v)
        else:
            bad("sortering")
    if (v := params.get("ordning")) is not None:
        if v in ORDERS:
            q = replace(q, order=v)
        else:
            bad("ordning")
    if v := params.get("orsak"):
        try:
            q = replace(q, cause=GapCause(v))
        except ValueError:
            bad("orsak")
    if v := params.get("rub"):
        if v in RUB_FILTERS:
            q = replace(q, rub=v)
        else:
            bad("RUB")
    if v := params.get("sabo"):
        if v in SABO_FILTERS:
            q = replace(q, sabo=v == "ja")
        else:
            bad("SÄBO")
    if v := params.get("minst_dagar"):
        if (days := _int(v, 0, MAX_MIN_DAYS)) is not None:
            q = replace(q, min_days=days)
        else:
            bad("minst antal dagar")
    if v := params.get("per_sida"):
        if (size := _int(v, 1, 1000)) in PAGE_SIZES:
            q = replace(q, per_page=size)
        else:
            bad("antal per sida")
    if v := params.get("sida"):
        if (page := _int(v, 1, 1_000_000)) is not None:
            q = replace(q, page=page)
        else:
            bad("sida")
    return replace(q, problems=tuple(problems))


def _matches(row: WorklistRow, q: WorklistQuery) -> bool:
    if q.cause is not None and row.cause is not q.cause:
        return False
    if q.rub is not None:
        if q.rub == "4-5":
            if row.rub is None or row.rub < 4:
                return False
        elif q.rub == "saknas":
            if row.rub is not None:
                return False
        elif row.rub != int(q.rub):
            return False
    if q.sabo is not None and row.sabo is not q.sabo:
        return False
    return q.min_days is None or row.days_open >= q.min_days


def _sort_key(key: str):
    if key == "rub":
        return lambda r: -1 if r.rub is None else r.rub
    if key == "orsak":
        return lambda r: r.cause_text
    if key == "sabo":
        return lambda r: r.sabo
    return lambda r: r.days_open


@dataclass(frozen=True)
class CauseCount:
    cause: GapCause
    text: str
    count: int


@dataclass(frozen=True)
class WorklistSummary:
    """Counts of all the unit's open gaps (not only the filtered ones): no patient named."""

    total: int
    rub_4_5: int
    sabo: int
    long_open: int  # open LONG_OPEN_DAYS days or more
    oldest_days: int | None
    by_cause: tuple[CauseCount, ...]


@dataclass(frozen=True)
class WorklistPage:
    rows: list[WorklistRow]  # this page's rows, in order
    query: WorklistQuery  # as asked, with the page clamped to the pages there are
    summary: WorklistSummary
    matching: int  # rows that pass the filters
    pages: int

    @property
    def first(self) -> int:
        """1-based number of the page's first row (0 for none)."""
        return (self.query.page - 1) * self.query.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0

    @property
    def previous_link(self) -> str | None:
        if self.query.page <= 1:
            return None
        return self.query.query_string(page=self.query.page - 1) or "?"

    @property
    def next_link(self) -> str | None:
        return self.query.query_string(page=self.query.page + 1) if self.query.page < self.pages else None


def summarise(rows: Sequence[WorklistRow]) -> WorklistSummary:
    causes = Counter(r.cause for r in rows)
    return WorklistSummary(
        total=len(rows),
        rub_4_5=sum(1 for r in rows if r.rub is not None and r.rub >= 4),
        sabo=sum(1 for r in rows if r.sabo),
        long_open=sum(1 for r in rows if r.days_open >= LONG_OPEN_DAYS),
        oldest_days=max((r.days_open for r in rows), default=None),
        by_cause=tuple(CauseCount(c, CAUSE_TEXT.get(c, c.value), n)
                       for c, n in sorted(causes.items(), key=lambda cn: (-cn[1], CAUSE_TEXT.get(cn[0], cn[0].value)))),
    )


def select(rows: Sequence[WorklistRow], query: WorklistQuery) -> WorklistPage:
    """Filter, sort (ties: the longest-waiting first, then the gap id, so the order is stable) and
    cut out the asked page (beyond the last page: the last one)."""
    matching = [r for r in rows if _matches(r, query)]
    matching.sort(key=lambda r: (-r.days_open, str(r.gap_id)))
    matching.sort(key=_sort_key(query.sort), reverse=query.order == "fallande")
    pages = max(1, math.ceil(len(matching) / query.per_page))
    page = min(query.page, pages)
    q = replace(query, page=page)
    start = (page - 1) * query.per_page
    return WorklistPage(matching[start:start + query.per_page], q, summarise(rows), len(matching), pages)
