"""The goal report as one self-contained HTML page (inline CSS and SVG; no request leaves the file)."""
from __future__ import annotations

from dataclasses import dataclass

import jinja2
from markupsafe import Markup

from tools.mainjob.goals import (
    VERDICT_TEXT, Goal, format_change, format_estimate, format_g3_population, format_n, format_signed_pct,
    format_target, format_window,
)

from . import charts
from .data import ReportData, UnitFigure

MIN_COHORT = 30  # as continuity.goal_comparison: below it no interval is trusted
UNITS_SHOWN = 5  # best and worst


@dataclass(frozen=True)
class GoalLine:
    goal: str
    label: str
    now: str
    n_now: str
    baseline: str
    n_baseline: str
    change: str
    target: str
    verdict: str
    verdict_code: str
    plain: bool
    panel: str | None


def goal_lines(goals: list[Goal]) -> list[GoalLine]:
    lines = []
    for g in goals:
        panel = None
        if g.kind == "index" and g.panel.value is not None:
            p = g.panel
            interval = "" if p.low is None or p.high is None else \
                f" ({format_signed_pct(p.low)} to {format_signed_pct(p.high)})"
            panel = f"same patients at both dates (n = {format_n(p)}): {format_signed_pct(p.value)}{interval}"
        lines.append(GoalLine(g.goal, g.label, format_estimate(g.kind, g.now), format_n(g.now),
                              format_estimate(g.kind, g.baseline), format_n(g.baseline), format_change(g),
                              format_target(g), VERDICT_TEXT[g.verdict], g.verdict, g.plain, panel))
    return lines


def best_and_worst(units: list[UnitFigure], k: int = UNITS_SHOWN) -> tuple[list[UnitFigure], list[UnitFigure]]:
    """Units with a trustworthy cohort (≥ 30 patients) by mean doctor COC now: the best k and worst k."""
    ranked = sorted((u for u in units if u.now_mean is not None and (u.now_n or 0) >= MIN_COHORT),
                    key=lambda u: u.now_mean, reverse=True)
    best = ranked[:k]
    worst = [u for u in reversed(ranked[-k:]) if u not in best] if len(ranked) > k else []
    return best, worst


TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html lang="sv"><head><meta charset="utf-8">
<title>Goal report — {{ d.region_name }} — {{ d.as_of }}</title>
<style>
 body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 72em;
        color: #222; line-height: 1.45; font-size: 14px; }
 h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { font-size: 1.2em; margin-top: 1.8em;
      border-bottom: 1px solid #ccc; } .meta { color: #555; }
 table { border-collapse: collapse; width: 100%; margin: 0.5em 0; font-size: 0.88em; }
 th, td { padding: 0.3em 0.5em; border-bottom: 1px solid #e3e3e3; text-align: right; vertical-align: top; }
 td { white-space: nowrap; } table.goals td:nth-child(2) { white-space: normal; min-width: 16em; }
 .hsa { color: #777; font-size: 0.85em; }
 th:first-child, td:first-child, table.goals th:nth-child(2), table.goals td:nth-child(2), .hsa { text-align: left; }
 .verdict-met { color: #1b5e20; font-weight: 600; } .verdict-not_met { color: #b71c1c; font-weight: 600; }
 .verdict-inconclusive, .verdict-too_few_patients, .verdict-incomplete_window, .verdict-no_data { color: #8a6d00; }
 .panel td { color: #555; font-size: 0.9em; border-bottom: none; }
 .incomplete { background: #f3f3f3; color: #777; }
 figure { margin: 1em 0; page-break-inside: avoid; } figcaption { color: #555; font-size: 0.9em; }
 figure svg { max-width: 100%; height: auto; }
 .note { background: #f7f7f2; border-left: 3px solid #c9c28a; padding: 0.5em 1em; }
 .empty { color: #777; font-style: italic; }
 @media print { body { margin: 0; max-width: none; } h2 { page-break-after: avoid; } }
</style></head><body>
<h1>Goal report — {{ d.region_name }}</h1>
<p class="meta">{% if period_from %}Period {{ period_from }} – {{ d.as_of }}{% else %}Now {{ d.as_of }}{% endif %}
 · {% if d.baseline %}baseline {{ d.baseline }}{% else %}<strong>no baseline pinned yet</strong> (G2 and G4 need one:
 <code>flk continuity baseline pin</code>, or pass <code>--baseline</code>){% endif %}
 · generated {{ d.generated_at.strftime("%Y-%m-%d %H:%M") }}
 · {% if d.coverage.complete_from %}visit data complete from {{ d.coverage.complete_from }} ({{ d.coverage.source }}){%
 else %}<strong>visit data coverage not recorded: every continuity window counts as incomplete</strong>{% endif %}
 {% if d.coverage.window_months %}· continuity over {{ d.coverage.window_months }}-month windows{% endif %}</p>

<h2>The four goals</h2>
<table class="goals">
<tr><th>Goal</th><th>What</th><th>Now (95 % CI)</th><th>n now</th><th>Baseline (95 % CI)</th><th>n baseline</th>
<th>Change (95 % CI)</th><th>Target</th><th>Verdict</th></tr>
{% for g in goals %}
<tr class="{{ '' if g.plain else 'incomplete' }}"><td>{{ g.goal }}</td><td>{{ g.label }}</td>
<td>{{ g.now }}{{ '' if g.plain else ' *' }}</td><td>{{ g.n_now }}</td><td>{{ g.baseline }}{{ '' if g.plain else ' *' }}</td>
<td>{{ g.n_baseline }}</td><td>{{ g.change }}</td><td>{{ g.target }}</td>
<td class="verdict-{{ g.verdict_code }}">{{ g.verdict }}</td></tr>
{% if g.panel %}<tr class="panel"><td></td><td colspan="8">{{ g.panel }}</td></tr>{% endif %}
{% endfor %}
</table>
{% if windows %}<p class="meta">Continuity windows: baseline {{ windows[0] }}, now {{ windows[1] }}.</p>{% endif %}
{% if any_incomplete %}<p class="note">* Not a goal figure: its follow-up window reaches back before the date from
which the visit data are complete, so it counts fewer visits and fewer eligible patients than a complete window.</p>{% endif %}

<h2>Over time</h2>
{% if share_svg %}<figure>{{ share_svg }}<figcaption>G1 and G3: shares of the whole register on each stored day
(no sampling interval), against their floors. Dotted line: the baseline.</figcaption></figure>
{% else %}<p class="empty">No stored G1/G3 days yet (the listing service stores one a day).</p>{% endif %}
{% for svg, caption in index_svgs %}<figure>{{ svg }}<figcaption>{{ caption }}</figcaption></figure>{% endfor %}
{% if not index_svgs %}<p class="empty">No continuity snapshots yet (the continuity worker writes one a day).</p>{% endif %}

<h2>Care units</h2>
{% if best %}
<table class="units"><tr><th>Best units: doctor continuity now</th>{% if named %}<th class="hsa">HSA-id</th>{% endif %}<th>mean COC (95 % CI)</th><th>n</th>
<th>change (95 % CI)</th><th>named FLK (G1)</th><th>listed</th></tr>
{% for u in best %}{{ unit_row(u, named) }}{% endfor %}</table>
{% if worst %}<table class="units"><tr><th>Units with the lowest doctor continuity now</th>{% if named %}<th class="hsa">HSA-id</th>{% endif %}<th>mean COC (95 % CI)</th><th>n</th>
<th>change (95 % CI)</th><th>named FLK (G1)</th><th>listed</th></tr>
{% for u in worst %}{{ unit_row(u, named) }}{% endfor %}</table>{% endif %}
{% if small_units %}<p class="meta">Not ranked (fewer than {{ min_cohort }} eligible patients: too few for the interval
to be trusted): {{ small_units }}.</p>{% endif %}
{% else %}<p class="empty">No unit has {{ min_cohort }} or more eligible patients yet.</p>{% endif %}
{% if unit_svg %}<figure>{{ unit_svg }}<figcaption>Every unit's mean COC of doctor contacts now with its 95 %
interval and cohort size. A wide interval is a small cohort, not a bad unit.</figcaption></figure>{% endif %}

<h2>Care gaps</h2>
{% if gap_svg %}<figure>{{ gap_svg }}<figcaption>Open care gaps by unit and cause: patients with RUB 4–5 or living in
SÄBO who lack a named fast läkarkontakt (never assigned, their doctor left, a locum's fictive list, re-listed
elsewhere).</figcaption></figure>
<table class="causes"><tr><th>Cause (the whole region)</th><th>open gaps</th></tr>{% for cause, n in gap_totals %}
<tr><td>{{ cause }}</td><td>{{ n }}</td></tr>{% endfor %}</table>
{% else %}<p class="empty">No open care gaps.</p>{% endif %}

<h2>How to read this</h2>
<ul>
<li><strong>95 % confidence interval.</strong> A continuity figure is a mean over the patients who had at least
three visits at their unit in the window; had other patients had those visits, it would differ. The interval
shows how much: changes inside it are compatible with the data. An interval that contains 0 cannot tell an
increase from a decrease.</li>
<li><strong>Verdicts are judged on the interval, never on the point.</strong> <em>Met</em>: the lower bound
reaches the target (G2: +20 %; G4, a "betydande ökning": above 0). <em>Not met</em>: the upper bound is below the
target. <em>Inconclusive</em>: the interval straddles the target — more time or more patients are needed.</li>
<li><strong>Cohort size (n).</strong> Below {{ min_cohort }} patients no interval is trusted
(<em>too few patients</em>). A unit with 40 patients can move ±10 % by chance; a region with 60 000 by well under
1 %.</li>
<li><strong>Complete windows.</strong> A continuity figure counts 18 months of visits. If the visit data begin
inside that window, the figure counts fewer visits and patients and is not comparable: it is marked and never
shown as a goal figure.</li>
<li><strong>Significant.</strong> A change is significant when its 95 % interval lies wholly above (or below)
0: chance alone would rarely give it. G4 asks for a significant increase ("betydande ökning"): met only when the
lower bound of the change is above 0 — a rising point whose interval still reaches below 0 is not enough.</li>
<li><strong>Same patients.</strong> The line under G2/G4 follows the patients eligible at both dates: whether
continuity changed for them, rather than through who entered or left the cohort.</li>
<li>G1 and G3 count the whole register (not a sample): they have no interval; n is the population and the
number of SÄBO residents who get their main care there.</li>
<li><strong>Which SÄBO residents.</strong> {{ g3_population }}. G4's cohort is the same residents.</li>
</ul>
<p class="meta">Aggregates only: no patient appears in this report, which reads only what the dashboards'
read-only role (flk_reader) may read. Sources: listing.goal_kpi_region_daily (else goal_kpi_region_on),
listing.goal_kpi_region_history, listing.goal_kpi_unit_daily (else goal_kpi_unit_on), continuity.goal_comparison,
continuity.goal_series, continuity.data_coverage, notifier.care_gap_history (counted per unit and cause).
{% if not named %}Units by HSA-id (unit names come from the unit register, which this role does not read).{% endif %}</p>
</body></html>
""")

UNIT_ROW = jinja2.Environment(autoescape=True).from_string(
    "<tr><td>{{ u.name }}</td>{% if named %}<td class=\"hsa\">{{ u.unit_id }}</td>{% endif %}<td>{{ mean }}</td><td>{{ u.now_n }}</td><td>{{ change }}</td>"
    "<td>{{ g1 }}</td><td>{{ u.listed if u.listed is not none else 'n/a' }}</td></tr>")


def _unit_row(u: UnitFigure, named: bool = True) -> Markup:
    mean = "n/a" if u.now_mean is None else (
        f"{u.now_mean:.3f}" if u.now_low is None else f"{u.now_mean:.3f} ({u.now_low:.3f}–{u.now_high:.3f})")
    if u.change is None:
        change = "n/a"
    elif u.change_low is None:
        change = format_signed_pct(u.change)
    else:
        change = f"{format_signed_pct(u.change)} ({format_signed_pct(u.change_low)} to {format_signed_pct(u.change_high)})"
    g1 = "n/a" if u.g1_share is None else f"{u.g1_share * 100:.1f} %"
    return Markup(UNIT_ROW.render(u=u, mean=mean, change=change, g1=g1, named=named))


def render_report(d: ReportData) -> str:
    """The whole report; charts only for what has data."""
    goals = goal_lines(d.goals)
    index_goals = [g for g in d.goals if g.kind == "index"]
    windows = None
    if index_goals and index_goals[0].now.value is not None:
        windows = (format_window(index_goals[0].baseline_window), format_window(index_goals[0].now_window))
    index_svgs = []
    g2 = {label: d.series[key] for key, label in ((("all", "doctor"), "doctor contacts"),
                                                  (("all", "total"), "all contacts")) if d.series.get(key)}
    if g2:
        index_svgs.append((Markup(charts.index_chart(g2, d.baseline, target_change=0.20,
                                                     title="G2 — mean COC, all listed patients")),
                           "G2: mean continuity (COC) over eligible patients on each snapshot date with its 95 % "
                           "interval; dashed: the +20 % target from the baseline's mean; hollow grey points: "
                           "incomplete windows (not goal figures)."))
    if d.series.get(("sabo", "doctor")):
        index_svgs.append((Markup(charts.index_chart({"SÄBO residents (main care there), doctor contacts":
                                                      d.series[("sabo", "doctor")]},
                                                     d.baseline, target_change=None,
                                                     title="G4 — mean COC of doctor contacts, SÄBO residents "
                                                           "(main care there)")),
                           "G4: the target is a significant increase — the change's 95 % interval above zero (see "
                           "the table above), not the line above the dashed baseline level. A small cohort: note "
                           "the width of the interval."))
    best, worst = best_and_worst(d.units)
    ranked = {u.unit_id for u in best + worst}
    small = [f"{u.name} (n = {u.now_n or 0})" for u in d.units
             if u.unit_id not in ranked and (u.now_n or 0) < MIN_COHORT]
    gap_totals: dict[str, int] = {}
    for g in d.gaps:
        gap_totals[g.cause.replace("_", " ")] = gap_totals.get(g.cause.replace("_", " "), 0) + g.open
    days = [p.day for p in d.shares] + [p.day for points in d.series.values() for p in points]
    return TEMPLATE.render(
        d=d, goals=goals, period_from=min(days) if days else None, windows=windows, any_incomplete=any(not g.plain for g in goals),
        share_svg=Markup(charts.share_chart(d.shares, d.baseline)) if d.shares else None,
        index_svgs=index_svgs, best=best, worst=worst, small_units=", ".join(small), min_cohort=MIN_COHORT,
        unit_row=_unit_row, named=any(u.name != u.unit_id for u in d.units),
        unit_svg=Markup(charts.unit_chart(d.units)) if any(u.now_mean is not None for u in d.units) else None,
        gap_svg=Markup(charts.gap_chart(d.gaps)) if d.gaps else None,
        gap_totals=sorted(gap_totals.items(), key=lambda kv: -kv[1]),
        g3_population=format_g3_population(d.g3_population))
