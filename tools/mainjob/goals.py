"""The goal summary: G1–G4 read from the services' own views, and its terminal rendering.

Nothing is recomputed here. G1 and G3 come from the listing service's goal KPIs for the baseline
date and today, as stored for those days (`listing.goal_kpi_region_daily`, which the main job stores
before it reads them), else from `listing.goal_kpi_region_on(date)`: counts of the whole register,
so they carry their denominators but no sampling interval. G2 and G4 come from the
continuity worker's daily snapshots through `continuity.goal_comparison(baseline)`, which says
for each figure whether its follow-up window is complete (data coverage), the cohort sizes, the
95 % interval of each mean and of the change (cross-section and same patients), and a verdict
— an incomplete window is never shown as a plain goal figure. Alerts are this run's (a re-run on
the same setup does not count earlier runs' deliveries), read from the notifier's tables; dead
letters from the `*.dlq` topics' offsets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from flk.events.connection import PLAINTEXT, KafkaConnection

#: verdicts of `continuity.goal_comparison` (and of the share goals: met / not_met / no_data)
VERDICT_TEXT = {
    "met": "met",
    "not_met": "not met",
    "inconclusive": "inconclusive",
    "incomplete_window": "incomplete window",
    "too_few_patients": "too few patients",
    "no_data": "no data",
}


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95 % interval (None where it has none) and its cohort size."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
    n: int | None = None


@dataclass(frozen=True)
class Window:
    """How complete the follow-up window behind a continuity figure is."""

    complete: bool | None = None
    coverage: float | None = None  # share of the window's days with complete visit data


@dataclass(frozen=True)
class Goal:
    goal: str  # G1 … G4
    label: str
    kind: str  # "share" (0–1, target a floor) or "index" (mean COC, target a relative change)
    target: float | None  # share: the floor; index: the relative change (0.20 = +20 %), 0 = a significant increase
    now: Estimate
    baseline: Estimate
    source: str  # where the number was read
    change: Estimate = field(default_factory=Estimate)  # index: relative change with its interval
    panel: Estimate = field(default_factory=Estimate)  # index: the same patients' change, n = panel size
    now_window: Window = field(default_factory=Window)
    baseline_window: Window = field(default_factory=Window)
    verdict_code: str | None = None  # index: from goal_comparison

    @property
    def value(self) -> float | None:
        return self.now.value

    @property
    def change_value(self) -> float | None:
        """share: percentage points (computed from the two counts' shares); index: as read."""
        if self.kind == "index":
            return self.change.value
        if self.now.value is None or self.baseline.value is None:
            return None
        return self.now.value - self.baseline.value

    @property
    def verdict(self) -> str:
        """'met', 'not_met', 'inconclusive', 'incomplete_window', 'too_few_patients' or 'no_data'."""
        if self.kind == "index":
            return self.verdict_code or "no_data"
        if self.now.value is None or self.target is None:
            return "no_data"
        return "met" if self.now.value >= self.target else "not_met"

    @property
    def plain(self) -> bool:
        """Whether the figure may be shown as a plain goal figure (its windows are complete)."""
        return self.kind == "share" or self.verdict not in ("incomplete_window", "no_data")


@dataclass(frozen=True)
class Coverage:
    """From which date visit data are complete (None: nobody said), and who said so."""

    complete_from: date | None = None
    source: str | None = None
    window_months: int | None = None


@dataclass(frozen=True)
class AlertFigures:
    gaps_open: int = 0
    gaps_opened: int = 0
    alerts_planned: int = 0  # this run's
    delivered: dict[str, int] = field(default_factory=dict)  # channel -> this run's deliveries delivered
    failed: int = 0
    pending: int = 0
    mail_caught: int | None = None  # what the demo mail catcher received
    teams_caught: int | None = None  # what the demo Teams sink received


@dataclass(frozen=True)
class DeadLetters:
    total: int
    by_topic: dict[str, int]


@dataclass(frozen=True)
class G3Population:
    """Who G3 counts (seed 001: SÄBO residents "som där får sin huvudsakliga hälso- och sjukvård"), today:
    the SÄBO residents, those of them recorded as getting their main care elsewhere (not counted), and
    those whose residence fact does not say (counted, as before the qualifier existed)."""

    sabo_residents: int
    main_care_elsewhere: int
    main_care_unknown: int

    @property
    def counted(self) -> int:
        return self.sabo_residents - self.main_care_elsewhere


@dataclass(frozen=True)
class GuardianConsent:
    """P3: the minors' listing requests of the period that waited for a guardian's consent, by where
    they stand now (``listing.pending_listing``): still pending (of them, past their expiry date and
    left for the sweep), and closed consented, refused, expired or otherwise (a rule rejected it on
    the consent's date, a newer request superseded it, the child left the population)."""

    pending: int = 0
    past_expiry: int = 0
    consented: int = 0
    refused: int = 0
    expired: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.consented + self.refused + self.expired + self.other


@dataclass(frozen=True)
class Summary:
    region: str
    preset: str
    period: tuple[date, date]
    baseline_date: date
    goals: list[Goal]
    alerts: AlertFigures
    dead_letters: DeadLetters
    elapsed_s: float | None = None
    coverage: Coverage = field(default_factory=Coverage)
    report_path: str | None = None
    g3_population: G3Population | None = None
    guardian_consent: GuardianConsent | None = None  # None: not read (no listing service)


# ------------------------------------------------------------------ rendering

def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def format_signed_pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def format_estimate(kind: str, e: Estimate) -> str:
    if e.value is None:
        return "n/a"
    if kind == "share":
        return _pct(e.value)
    if e.low is None or e.high is None:
        return f"{e.value:.3f}"
    return f"{e.value:.3f} ({e.low:.3f}–{e.high:.3f})"


def format_n(e: Estimate) -> str:
    return "n/a" if e.n is None else f"{e.n:,}".replace(",", " ")


def format_change(goal: Goal) -> str:
    change = goal.change_value
    if change is None:
        return "n/a"
    if goal.kind == "share":
        return f"{change * 100:+.1f} pp"
    c = goal.change
    if c.low is None or c.high is None:
        return format_signed_pct(change)
    return f"{format_signed_pct(change)} ({format_signed_pct(c.low)} to {format_signed_pct(c.high)})"


def format_target(goal: Goal) -> str:
    if goal.target is None:
        return "n/a"
    if goal.kind == "share":
        return f"≥ {goal.target * 100:.0f} %"
    return "significant increase" if goal.target == 0 else f"+{goal.target * 100:.0f} %"


def format_window(w: Window) -> str:
    if w.complete is None:
        return "unknown"
    cov = "" if w.coverage is None else f" ({w.coverage * 100:.0f} % covered)"
    return ("complete" if w.complete else "INCOMPLETE") + cov


def format_g3_population(p: G3Population | None) -> str:
    """What G3 and G4 count, in words, with today's counts when they were read."""
    text = ("G3/G4 count SÄBO residents who get their main health care there (\"som där får sin huvudsakliga "
            "hälso- och sjukvård\"); a resident whose residence fact does not say is counted")
    if p is None:
        return text
    return (f"{text}: now {p.counted} of {p.sabo_residents} SÄBO residents ({p.main_care_elsewhere} get it "
            f"elsewhere, not counted; {p.main_care_unknown} not recorded, counted)")


def format_guardian_consent(c: GuardianConsent) -> str:
    text = (f"Guardian consent (P3): {c.total} minors' listing requests in the period waited for a second "
            f"guardian — {c.pending} pending, {c.consented} consented, {c.refused} refused, {c.expired} expired")
    if c.other:
        text += f", {c.other} otherwise closed (rejected on the consent's date, superseded or cancelled)"
    if c.past_expiry:
        text += f"; {c.past_expiry} of the pending are past their expiry date, left for the expiry sweep"
    return text


def render_summary(summary: Summary) -> str:
    """The terminal summary (plain text, fixed-width table, notes under it)."""
    start, end = summary.period
    lines = [
        f"Goals — {summary.region} (simulated, preset {summary.preset}, {start} – {end}); "
        f"baseline {summary.baseline_date}, now {end}",
    ]
    cov = summary.coverage
    months = f"{cov.window_months}-month" if cov.window_months else "follow-up"
    if cov.complete_from is None:
        lines.append(f"Visit data coverage: not recorded — every continuity ({months}) window counts as incomplete")
    else:
        lines.append(f"Visit data complete from {cov.complete_from} ({cov.source}); continuity uses {months} windows")
    header = ("goal", "what", "now (95 % CI)", "n now", "baseline (95 % CI)", "n base", "change (95 % CI)",
              "target", "verdict")
    rows = []
    notes: list[str] = []
    for g in summary.goals:
        mark = "" if g.plain else " *"
        rows.append((g.goal, g.label, format_estimate(g.kind, g.now) + mark, format_n(g.now),
                     format_estimate(g.kind, g.baseline) + mark, format_n(g.baseline), format_change(g),
                     format_target(g), VERDICT_TEXT[g.verdict]))
        if g.kind == "index" and g.panel.value is not None:
            p = g.panel
            interval = ("" if p.low is None or p.high is None
                        else f" ({format_signed_pct(p.low)} to {format_signed_pct(p.high)})")
            rows.append(("", f"  same patients at both dates (n = {format_n(p)})", "", "", "", "",
                         format_signed_pct(p.value) + interval, "", ""))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines.append("  " + line(header))
    lines.append("  " + "  ".join("─" * w for w in widths))
    lines.extend("  " + line(r) for r in rows)
    index_goals = [g for g in summary.goals if g.kind == "index"]
    if index_goals:
        g = index_goals[0]
        lines.append(f"  continuity windows: baseline {format_window(g.baseline_window)}, "
                     f"now {format_window(g.now_window)}")
    if any(not g.plain for g in summary.goals):
        notes.append("* not a goal figure: its follow-up window is not complete (visit data begin inside it), so "
                     "it counts fewer visits and fewer eligible patients than a complete window would")
    notes.append("G1/G3 count the whole register (no sampling interval); n = population / SÄBO residents who get "
                 "their main care there. G2/G4: mean COC over eligible patients (n), 95 % intervals by the delta "
                 "method; met = the interval's lower bound clears the target, not met = its upper bound is below "
                 "it, else inconclusive")
    notes.append(format_g3_population(summary.g3_population))
    lines.extend("  " + n for n in notes)
    a = summary.alerts
    delivered = ", ".join(f"{n} by {channel}" for channel, n in sorted(a.delivered.items())) or "none"
    lines.append(f"Care gaps in the register: {a.gaps_open} open ({a.gaps_opened} opened in all). "
                 f"Alerts this run: {a.alerts_planned} planned; deliveries sent: {delivered}; "
                 f"{a.failed} failed, {a.pending} pending")
    if summary.guardian_consent is not None:
        lines.append(format_guardian_consent(summary.guardian_consent))
    caught = []
    if a.mail_caught is not None:
        caught.append(f"mail catcher received {a.mail_caught} email(s)")
    if a.teams_caught is not None:
        caught.append(f"Teams sink received {a.teams_caught} card(s)")
    if caught:
        lines.append("  (" + "; ".join(caught) + ")")
    d = summary.dead_letters
    detail = ", ".join(f"{t} {n}" for t, n in sorted(d.by_topic.items()) if n)
    lines.append(f"Dead-lettered events: {d.total}" + (f" ({detail})" if detail else " (every *.dlq topic is empty)"))
    if summary.report_path:
        lines.append(f"Goal report: {summary.report_path}")
    if summary.elapsed_s is not None:
        lines.append(f"Run took {summary.elapsed_s:.0f} s")
    return "\n".join(lines)


# ------------------------------------------------------------------ reading the services' figures

async def read_region_kpis_on(conn, region_code: str, on_date: date):
    """The region's row of the listing service's goal KPIs on a date: as stored for that day
    (``listing.goal_kpi_region_daily``, what the dashboards' series show; ``record_goal_kpis`` writes it
    from the same definition, tests/integration/listing/test_goal_kpis_set_based.py), else computed from
    the register's periods (``listing.goal_kpi_region_on``, one pass over every person). None: no row."""
    columns = ("population, g1_share_of_population, g3_residents, g3_share, sabo_residents, "
               "sabo_main_care_elsewhere, g3_main_care_unknown")
    row = await conn.fetchrow(f"SELECT {columns} FROM listing.goal_kpi_region_daily "
                              "WHERE region_code = $1 AND snapshot_on = $2", region_code, on_date)
    if row is None:
        row = await conn.fetchrow(f"SELECT {columns} FROM listing.goal_kpi_region_on($2) WHERE region_code = $1",
                                  region_code, on_date)
    return row


def shares_from(row) -> dict[str, Estimate]:
    """G1 (named FLK, share of the population) and G3 (SÄBO) with their denominators, from a region KPI row."""
    if row is None:
        return {}
    return {"G1": Estimate(_float(row["g1_share_of_population"]), n=row["population"]),
            "G3": Estimate(_float(row["g3_share"]), n=row["g3_residents"])}


def g3_population_from(row) -> "G3Population | None":
    """Who G3 counts (see :class:`G3Population`), from a region KPI row."""
    if row is None:
        return None
    return G3Population(row["sabo_residents"], row["sabo_main_care_elsewhere"], row["g3_main_care_unknown"])


async def read_listing_shares(conn, region_code: str, on_date: date) -> dict[str, Estimate]:
    """G1 and G3 on a date with their denominators (``read_region_kpis_on``)."""
    return shares_from(await read_region_kpis_on(conn, region_code, on_date))


async def read_guardian_consent(conn, since: date, today: date) -> GuardianConsent:
    """P3: the guardian-consent requests made on or after ``since`` (the simulated period), from the
    listing register's reporting function `listing.guardian_consent_totals`."""
    rows = await conn.fetch(
        "SELECT outcome, requests AS n, past_expiry FROM listing.guardian_consent_totals($1, $2)", since, today)
    by = {r["outcome"]: r["n"] for r in rows}
    known = ("pending", "consented", "refused", "expired")
    return GuardianConsent(pending=by.get("pending", 0), past_expiry=sum(r["past_expiry"] for r in rows),
                           consented=by.get("consented", 0), refused=by.get("refused", 0),
                           expired=by.get("expired", 0), other=sum(n for o, n in by.items() if o not in known))


async def read_g3_population(conn, region_code: str, on_date: date) -> G3Population | None:
    """Who G3 counts on a date (see :class:`G3Population`; ``read_region_kpis_on``)."""
    return g3_population_from(await read_region_kpis_on(conn, region_code, on_date))


def local_today() -> date:
    """Today where the services count days (their default time zone, Europe/Stockholm)."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Europe/Stockholm")).date()


def _float(value) -> float | None:
    return None if value is None else float(value)


async def record_listing_kpi_days(conn, days: list[date]) -> int:
    """Store the listing service's goal KPIs for past days (what `flk listing kpi-snapshot` does
    daily), so the dashboards' G1/G3 time series cover the replayed period."""
    stored = 0
    for day in days:
        stored += await conn.fetchval("SELECT listing.record_goal_kpis($1::date)", day)
    return stored


async def record_listing_kpi_days_at_once(dsn: str, days: list[date], connections: int = 2) -> int:
    """``record_listing_kpi_days`` on several connections at once, each day on one: a day's KPIs are one
    query on one core (1–2 s at region size), and each day writes only its own rows."""
    import asyncio

    import asyncpg

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=connections)
    try:
        async def one(day: date) -> int:
            async with pool.acquire() as conn:
                return await record_listing_kpi_days(conn, [day])

        return sum(await asyncio.gather(*(one(day) for day in days)))
    finally:
        await pool.close()


async def read_continuity(conn, region_code: str, baseline: date) -> dict[tuple[str, str], dict]:
    """(cohort, contacts) -> the region's row of `continuity.goal_comparison(baseline)`."""
    from services.continuity.adapters.goals import goal_comparison

    rows = await goal_comparison(conn, region_code, baseline)
    return {(r["cohort"], r["contacts"]): r for r in rows}


async def read_coverage(conn, region_code: str, window_months: int | None) -> Coverage:
    row = await conn.fetchrow("SELECT complete_from, source FROM continuity.data_coverage "
                              "WHERE region_code = $1 AND care_unit_id = ''", region_code)
    if row is None:
        return Coverage(window_months=window_months)
    return Coverage(row["complete_from"], row["source"], window_months)


def _index_goal(goal: str, label: str, target: float, row: dict | None) -> Goal:
    source = "continuity.goal_comparison"
    if row is None:
        return Goal(goal, label, "index", target, Estimate(), Estimate(), source)
    return Goal(
        goal, label, "index", target,
        now=Estimate(row["now_mean"], row["now_ci_low"], row["now_ci_high"], row["now_n"]),
        baseline=Estimate(row["baseline_mean"], row["baseline_ci_low"], row["baseline_ci_high"], row["baseline_n"]),
        source=source,
        change=Estimate(row["change"], row["change_ci_low"], row["change_ci_high"]),
        panel=Estimate(row["panel_change"], row["panel_ci_low"], row["panel_ci_high"], row["panel_n"]),
        now_window=Window(row["now_complete"], row["now_coverage"]),
        baseline_window=Window(row["baseline_complete"], row["baseline_coverage"]),
        verdict_code=row["verdict"],
    )


def goals_from(baseline_shares: dict[str, Estimate], now_shares: dict[str, Estimate],
               continuity: dict[tuple[str, str], dict]) -> list[Goal]:
    def share(goal: str, label: str, target: float) -> Goal:
        return Goal(goal, label, "share", target, now_shares.get(goal, Estimate()),
                    baseline_shares.get(goal, Estimate()), "listing.goal_kpi_region_daily")

    return [
        share("G1", "named FLK, share of the population", 0.55),
        _index_goal("G2", "continuity (mean COC), doctor contacts", 0.20, continuity.get(("all", "doctor"))),
        _index_goal("G2", "continuity (mean COC), total contacts", 0.20, continuity.get(("all", "total"))),
        share("G3", "SÄBO residents (main care there) with a named FLK", 0.80),
        _index_goal("G4", "continuity (mean COC), doctor, SÄBO (main care there)", 0.0,
                    continuity.get(("sabo", "doctor"))),
    ]


async def read_alerts(conn, since: datetime | None = None) -> AlertFigures:
    """Care gaps in the register, and the alerts planned since ``since`` (this run) with their deliveries,
    from the notifier's reporting functions (`notifier.care_gap_totals`, `alert_totals`, `delivery_totals`)."""
    gaps = await conn.fetchrow("SELECT open_gaps AS open, opened_gaps AS opened FROM notifier.care_gap_totals()")
    planned = await conn.fetchval("SELECT alerts_planned FROM notifier.alert_totals($1)", since)
    rows = await conn.fetch("SELECT channel, status, deliveries AS n FROM notifier.delivery_totals($1)", since)
    delivered = {r["channel"]: r["n"] for r in rows if r["status"] == "delivered"}
    failed = sum(r["n"] for r in rows if r["status"] == "failed")
    pending = sum(r["n"] for r in rows if r["status"] == "pending")
    return AlertFigures(gaps["open"], gaps["opened"], planned, delivered, failed, pending)


async def count_dead_letters(bootstrap: str, prefix: str = "",
                             connection: KafkaConnection = PLAINTEXT) -> DeadLetters:
    """Messages in every registry topic's dead-letter twin (end minus beginning offsets)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    from flk.events.registry import registry

    options = connection.client_options()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [prefix + spec.dlq for spec in registry().topics if prefix + spec.dlq in existing]
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    by_topic: dict[str, int] = {name[len(prefix):]: 0 for name in names}
    if tps:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
        await consumer.start()
        try:
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        for tp in tps:
            by_topic[tp.topic[len(prefix):]] += end[tp] - begin[tp]
    return DeadLetters(sum(by_topic.values()), by_topic)
