"""The report's charts: matplotlib figures rendered to inline SVG (no files, no external fonts).

Pure: data in, an SVG string out. Each chart draws the 95 % intervals it has, the target, and
marks figures whose follow-up window is incomplete (hollow grey points on a shaded band: not goal
figures).
"""
from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from datetime import date

import matplotlib

matplotlib.use("Agg")  # no display: render to memory
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .data import GapCount, IndexPoint, SharePoint, UnitFigure  # noqa: E402

GOAL_COLOUR = "#1b5e20"
SERIES = ("#1f4e79", "#b35806")
INCOMPLETE = "#9e9e9e"
STYLE = {"svg.fonttype": "none", "font.family": "sans-serif", "font.size": 9,
         "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "flk-report"}


def _styled(chart):
    """Draw in the report's style without touching matplotlib's global settings."""
    @functools.wraps(chart)
    def draw(*args, **kwargs):
        with plt.rc_context(STYLE):
            return chart(*args, **kwargs)
    return draw


def to_svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _dates(ax) -> None:
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=8))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))


@_styled
def share_chart(points: Sequence[SharePoint], baseline: date | None) -> str:
    """G1 and G3 over time against their floors (55 %, 80 %)."""
    fig, ax = plt.subplots(figsize=(7.2, 3.0))
    days = [p.day for p in points]
    for (label, values, target, colour) in (
            ("G1 named FLK, share of the population", [p.g1 for p in points], 0.55, SERIES[0]),
            ("G3 SÄBO residents (main care there) with a named FLK", [p.g3 for p in points], 0.80, SERIES[1])):
        ax.plot(days, [v * 100 if v is not None else None for v in values], marker="o", ms=3, color=colour,
                label=label)
        ax.axhline(target * 100, color=colour, ls="--", lw=1)
        ax.annotate(f"target ≥ {target * 100:.0f} %", (days[0] if days else baseline, target * 100),
                    xytext=(2, 3), textcoords="offset points", color=colour, fontsize=8)
    _baseline_line(ax, baseline)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    _dates(ax)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return to_svg(fig)


def _baseline_line(ax, baseline: date | None) -> None:
    if baseline is not None:
        ax.axvline(baseline, color="#555", ls=":", lw=1)
        ax.annotate("baseline", (baseline, 0.02), xycoords=("data", "axes fraction"), xytext=(3, 0),
                    textcoords="offset points", fontsize=8, color="#555")


@_styled
def index_chart(series: dict[str, Sequence[IndexPoint]], baseline: date | None, *, target_change: float | None,
                title: str) -> str:
    """Mean COC over time with 95 % intervals, one line per series; incomplete windows drawn apart on a
    shaded, labelled band. The target is drawn from the baseline's mean (the latest complete snapshot on or
    before it): G2 at +20 %; G4 (a significant increase) against the baseline's level itself."""
    fig, ax = plt.subplots(figsize=(7.2, 3.0))
    incomplete_days: list[date] = []
    for (label, points), colour in zip(series.items(), SERIES):
        done = [p for p in points if p.complete and p.mean is not None]
        partial = [p for p in points if not p.complete and p.mean is not None]
        incomplete_days += [p.day for p in partial]
        if done:
            ax.fill_between([p.day for p in done], [p.low if p.low is not None else p.mean for p in done],
                            [p.high if p.high is not None else p.mean for p in done], color=colour, alpha=0.18, lw=0)
            ax.plot([p.day for p in done], [p.mean for p in done], marker="o", ms=3, color=colour,
                    label=f"{label} (95 % interval shaded)")
        if partial:
            ax.plot([p.day for p in partial], [p.mean for p in partial], ls="none", marker="o", ms=4, mfc="white",
                    mec=INCOMPLETE, label=f"{label}: incomplete window, not a goal figure")
        base = None if baseline is None else next((p for p in reversed(done) if p.day <= baseline), None)
        if base is not None:
            level = base.mean * (1 + (target_change or 0))
            ax.axhline(level, color=colour, ls="--", lw=1)
            text = (f"target: baseline +{target_change * 100:.0f} %" if target_change
                    else "baseline level: the target is a significant rise above it")
            ax.annotate(text, (done[0].day, level), xytext=(2, 3), textcoords="offset points", color=colour,
                        fontsize=8)
    if incomplete_days:
        ax.axvspan(min(incomplete_days), max(incomplete_days), color=INCOMPLETE, alpha=0.15, lw=0)
        ax.annotate("incomplete windows", (min(incomplete_days), 0.97), xycoords=("data", "axes fraction"),
                    xytext=(3, -9), textcoords="offset points", fontsize=8, color="#666")
    _baseline_line(ax, baseline)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean COC")
    ax.set_title(title, fontsize=9, loc="left")
    _dates(ax)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    return to_svg(fig)


@_styled
def unit_chart(units: Sequence[UnitFigure]) -> str:
    """Each unit's mean doctor COC now with its 95 % interval, sorted; n beside the bar."""
    shown = sorted((u for u in units if u.now_mean is not None), key=lambda u: u.now_mean)
    fig, ax = plt.subplots(figsize=(7.2, 0.8 + 0.24 * max(len(shown), 1)))
    y = range(len(shown))
    ax.barh(list(y), [u.now_mean for u in shown], color=[SERIES[0] if (u.now_n or 0) >= 30 else INCOMPLETE
                                                          for u in shown])
    ax.errorbar([u.now_mean for u in shown], list(y),
                xerr=[[u.now_mean - (u.now_low if u.now_low is not None else u.now_mean) for u in shown],
                      [(u.now_high if u.now_high is not None else u.now_mean) - u.now_mean for u in shown]],
                fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    ax.set_yticks(list(y), [f"{u.name} (n = {u.now_n})" for u in shown], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean COC, doctor contacts (grey: fewer than 30 patients)")
    return to_svg(fig)


@_styled
def gap_chart(gaps: Sequence[GapCount]) -> str:
    """Open care gaps per unit, stacked by cause."""
    units = sorted({g.name for g in gaps})
    causes = sorted({g.cause for g in gaps})
    fig, ax = plt.subplots(figsize=(7.2, 0.8 + 0.24 * max(len(units), 1)))
    left = [0] * len(units)
    palette = plt.get_cmap("tab10")
    for i, cause in enumerate(causes):
        counts = [sum(g.open for g in gaps if g.name == u and g.cause == cause) for u in units]
        ax.barh(units, counts, left=left, color=palette(i), label=cause.replace("_", " "))
        left = [a + b for a, b in zip(left, counts)]
    ax.invert_yaxis()  # the first unit on top, as in the tables
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("open care gaps (RUB 4–5 or SÄBO residents without a named FLK)")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_svg(fig)
