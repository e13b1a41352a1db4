"""The goal summary: G1–G4 read from the services' own views, and its terminal rendering.

Nothing is recomputed here. G1 and G3 come from the listing service's goal KPIs
(`listing.goal_kpi_region_on(date)`, for the baseline date and today); G2 and G4 from the continuity worker's daily
snapshots through `continuity.coc_vs_baseline(baseline)`; alerts from the notifier's tables;
dead letters from the `*.dlq` topics' offsets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flk.events.connection import PLAINTEXT, KafkaConnection


@dataclass(frozen=True)
class Goal:
    goal: str  # G1 … G4
    label: str
    kind: str  # "share" (0–1, target a floor) or "index" (mean COC, target a relative change)
    target: float | None  # share: the floor; index: the relative change (0.20 = +20 %), 0 = any increase
    value: float | None
    baseline: float | None
    source: str  # where the number was read

    @property
    def change(self) -> float | None:
        """share: percentage points; index: relative change."""
        if self.value is None or self.baseline is None:
            return None
        if self.kind == "share":
            return self.value - self.baseline
        return None if self.baseline == 0 else (self.value - self.baseline) / self.baseline

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        if self.kind == "share":
            return self.value >= self.target
        change = self.change
        if change is None:
            return None
        return change > 0 if self.target == 0 else change >= self.target - 1e-9  # float noise: 0.48 vs 0.40


@dataclass(frozen=True)
class AlertFigures:
    gaps_open: int = 0
    gaps_opened: int = 0
    alerts_planned: int = 0
    delivered: dict[str, int] = field(default_factory=dict)  # channel -> deliveries delivered
    failed: int = 0
    pending: int = 0
    mail_caught: int | None = None  # what the demo mail catcher received
    teams_caught: int | None = None  # what the demo Teams sink received


@dataclass(frozen=True)
class DeadLetters:
    total: int
    by_topic: dict[str, int]


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


def _fmt_value(kind: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f} %" if kind == "share" else f"{value:.3f}"


def _fmt_target(goal: Goal) -> str:
    if goal.target is None:
        return "n/a"
    if goal.kind == "share":
        return f"≥ {goal.target * 100:.0f} %"
    return "increase" if goal.target == 0 else f"+{goal.target * 100:.0f} %"


def _fmt_change(goal: Goal) -> str:
    change = goal.change
    if change is None:
        return "n/a"
    if goal.kind == "share":
        return f"{change * 100:+.1f} pp"
    return f"{change * 100:+.1f} %"


def _fmt_met(goal: Goal) -> str:
    return {True: "met", False: "not met", None: "—"}[goal.met]


def render_summary(summary: Summary) -> str:
    """The terminal summary (plain text, fixed-width table)."""
    start, end = summary.period
    lines = [
        f"Goals — {summary.region} (simulated, preset {summary.preset}, {start} – {end}); "
        f"baseline {summary.baseline_date}, now {end}",
    ]
    header = ("goal", "what", "value", "target", "baseline", "change", "status")
    rows = [(g.goal, g.label, _fmt_value(g.kind, g.value), _fmt_target(g), _fmt_value(g.kind, g.baseline),
             _fmt_change(g), _fmt_met(g)) for g in summary.goals]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 5}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines.append("  " + line(header))
    lines.append("  " + "  ".join("─" * w for w in widths))
    lines.extend("  " + line(r) for r in rows)
    a = summary.alerts
    delivered = ", ".join(f"{n} by {channel}" for channel, n in sorted(a.delivered.items())) or "none"
    lines.append(f"Care gaps: {a.gaps_open} open ({a.gaps_opened} opened in all). "
                 f"Alerts: {a.alerts_planned} planned; deliveries sent: {delivered}; "
                 f"{a.failed} failed, {a.pending} pending")
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
    if summary.elapsed_s is not None:
        lines.append(f"Run took {summary.elapsed_s:.0f} s")
    return "\n".join(lines)


# ------------------------------------------------------------------ reading the services' figures

async def _table_exists(conn, qualified: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified)


async def read_listing_shares(conn, region_code: str, on_date: date) -> dict[str, float | None]:
    """G1 (named FLK, share of the population) and G3 (SÄBO) on a date, from the listing service's
    goal KPIs (`listing.goal_kpi_region_on`, computed from the register's periods); where that
    function is not installed, today's figures from the older views `listing.kpi_g1/g3_region`."""
    out: dict[str, float | None] = {"G1": None, "G3": None}
    if await conn.fetchval("SELECT to_regprocedure('listing.goal_kpi_region_on(date)') IS NOT NULL"):
        row = await conn.fetchrow("SELECT g1_share_of_population, g3_share FROM listing.goal_kpi_region_on($1) "
                                  "WHERE region_code = $2", on_date, region_code)
        if row is not None:
            out = {"G1": _float(row["g1_share_of_population"]), "G3": _float(row["g3_share"])}
        return out
    if on_date != local_today():
        return out
    if await _table_exists(conn, "listing.kpi_g1_region"):
        out["G1"] = _float(await conn.fetchval(
            "SELECT share_of_population FROM listing.kpi_g1_region WHERE region_code = $1", region_code))
    if await _table_exists(conn, "listing.kpi_g3_region"):
        out["G3"] = _float(await conn.fetchval(
            "SELECT share FROM listing.kpi_g3_region WHERE region_code = $1", region_code))
    return out


def local_today() -> date:
    """Today where the services count days (their default time zone, Europe/Stockholm)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Europe/Stockholm")).date()


def _float(value) -> float | None:
    return None if value is None else float(value)


async def record_listing_kpi_days(conn, days: list[date]) -> int:
    """Store the listing service's goal KPIs for past days (what `flk listing kpi-snapshot` does
    daily), so the dashboards' G1/G3 time series cover the replayed period."""
    if not await conn.fetchval("SELECT to_regprocedure('listing.record_goal_kpis(date)') IS NOT NULL"):
        return 0
    stored = 0
    for day in days:
        stored += await conn.fetchval("SELECT listing.record_goal_kpis($1::date)", day)
    return stored


async def read_continuity(conn, region_code: str, baseline: date) -> dict[tuple[str, str], tuple]:
    """(cohort, contacts) -> (baseline COC, now COC) from the continuity snapshots."""
    if not await _table_exists(conn, "continuity.aggregate_snapshot"):
        return {}
    rows = await conn.fetch(
        "SELECT cohort, baseline_coc_doctor, now_coc_doctor, baseline_coc_total, now_coc_total "
        "FROM continuity.coc_vs_baseline($1) WHERE level = 'region' AND entity_id = $2", baseline, region_code)
    out: dict[tuple[str, str], tuple] = {}
    for r in rows:
        out[(r["cohort"], "doctor")] = (r["baseline_coc_doctor"], r["now_coc_doctor"])
        out[(r["cohort"], "total")] = (r["baseline_coc_total"], r["now_coc_total"])
    return out


def goals_from(baseline_shares: dict[str, float | None], now_shares: dict[str, float | None],
               continuity: dict[tuple[str, str], tuple]) -> list[Goal]:
    def coc(cohort: str, contacts: str) -> tuple:
        return continuity.get((cohort, contacts), (None, None))

    g2d, g2t, g4 = coc("all", "doctor"), coc("all", "total"), coc("sabo", "doctor")
    return [
        Goal("G1", "named FLK, share of the population", "share", 0.55, now_shares.get("G1"),
             baseline_shares.get("G1"), "listing.goal_kpi_region_on"),
        Goal("G2", "continuity (mean COC), doctor contacts", "index", 0.20, g2d[1], g2d[0],
             "continuity.coc_vs_baseline"),
        Goal("G2", "continuity (mean COC), total contacts", "index", 0.20, g2t[1], g2t[0],
             "continuity.coc_vs_baseline"),
        Goal("G3", "SÄBO residents with a named FLK", "share", 0.80, now_shares.get("G3"),
             baseline_shares.get("G3"), "listing.goal_kpi_region_on"),
        Goal("G4", "continuity (mean COC), doctor, SÄBO", "index", 0.0, g4[1], g4[0],
             "continuity.coc_vs_baseline"),
    ]


async def read_alerts(conn) -> AlertFigures:
    if not await _table_exists(conn, "notifier.alert_delivery"):
        return AlertFigures()
    gaps = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE resolved_at IS NULL) AS open, count(*) AS opened FROM notifier.care_gap")
    planned = await conn.fetchval("SELECT count(*) FROM notifier.alert")
    rows = await conn.fetch("SELECT channel, status, count(*) AS n FROM notifier.alert_delivery GROUP BY 1, 2")
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
