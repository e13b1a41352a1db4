"""The goal report's rendering (pure): every section, intervals and verdicts, incomplete windows marked,
no patient data, nothing fetched from outside the file."""
from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from tools.mainjob.goals import Coverage, Estimate, goals_from
from tools.report.data import GapCount, IndexPoint, ReportData, SharePoint, UnitFigure
from tools.report.render import best_and_worst, render_report

pytestmark = pytest.mark.unit

BASELINE = date(2026, 6, 1)
NOW = date(2026, 12, 1)


def comparison(mean0: float, mean1: float, n: int, *, complete: bool = True, verdict: str = "inconclusive") -> dict:
    return {"now_mean": mean1, "now_ci_low": mean1 - 0.02, "now_ci_high": mean1 + 0.02, "now_n": n,
            "baseline_mean": mean0, "baseline_ci_low": mean0 - 0.02, "baseline_ci_high": mean0 + 0.02,
            "baseline_n": n, "change": mean1 / mean0 - 1, "change_ci_low": -0.05, "change_ci_high": 0.12,
            "panel_change": 0.01, "panel_ci_low": -0.02, "panel_ci_high": 0.04, "panel_n": n - 10,
            "now_complete": complete, "now_coverage": 1.0 if complete else 0.6, "baseline_complete": complete,
            "baseline_coverage": 1.0 if complete else 0.4, "verdict": verdict if complete else "incomplete_window",
            "window_months": 18}


def a_report(*, complete: bool = True) -> ReportData:
    goals = goals_from({"G1": Estimate(0.42, n=280_000), "G3": Estimate(0.66, n=2_900)},
                       {"G1": Estimate(0.45, n=281_000), "G3": Estimate(0.71, n=2_950)},
                       {("all", "doctor"): comparison(0.40, 0.42, 60_000, complete=complete),
                        ("all", "total"): comparison(0.17, 0.18, 120_000, complete=complete, verdict="not_met"),
                        ("sabo", "doctor"): comparison(0.45, 0.50, 900, complete=complete, verdict="met")})
    days = [date(2025, 12, 1) + timedelta(days=30 * i) for i in range(13)]
    series = {key: [IndexPoint(d, 1000, base + 0.001 * i, base - 0.01, base + 0.01, complete or i > 6,
                               1.0 if complete or i > 6 else 0.5 + i / 20) for i, d in enumerate(days)]
              for key, base in ((("all", "doctor"), 0.4), (("all", "total"), 0.17), (("sabo", "doctor"), 0.45))}
    units = [UnitFigure(f"SE2321000016-VC{i:06d}", f"Vårdcentralen {i}", 20 if i == 12 else 300 + i,
                        0.3 + 0.03 * i, 0.28 + 0.03 * i, 0.32 + 0.03 * i, 0.01 * i, -0.05, 0.1, "inconclusive",
                        listed=9000, g1_share=0.4) for i in range(1, 13)]
    return ReportData("19", "Region Västmanland", BASELINE, NOW, datetime(2026, 12, 1, 8, tzinfo=timezone.utc),
                      Coverage(date(2024, 6, 1), "history-import", 18), goals,
                      [SharePoint(d, 0.42 + 0.002 * i, 280_000, 0.66 + 0.004 * i, 2_900) for i, d in enumerate(days)],
                      series, units,
                      [GapCount("SE2321000016-VC000001", "Vårdcentralen 1", "never_assigned", 40),
                       GapCount("SE2321000016-VC000001", "Vårdcentralen 1", "doctor_left", 7),
                       GapCount("SE2321000016-VC000002", "Vårdcentralen 2", "locum_list", 3)])


def test_the_report_has_every_section_with_charts_intervals_cohorts_and_verdicts():
    html = render_report(a_report())
    for heading in ("The four goals", "Over time", "Care units", "Care gaps", "How to read this"):
        assert f"<h2>{heading}</h2>" in html
    assert html.count("<svg") == 5           # G1/G3, G2, G4, units, care gaps
    assert "0.420 (0.400–0.440)" in html and "60 000" in html       # G2 now with interval and n
    assert "+5.0 % (-5.0 % to +12.0 %)" in html                     # the change with its interval
    assert "same patients at both dates (n = 59 990)" in html
    assert 'class="verdict-met">met<' in html and 'class="verdict-not_met">not met<' in html
    assert "visit data complete from 2024-06-01 (history-import)" in html
    assert "never assigned" in html and ">47<" not in html and ">40<" in html


def test_the_report_says_G3_and_G4_count_sabo_residents_who_get_their_main_care_there():
    from dataclasses import replace

    from tools.mainjob.goals import G3Population

    html = render_report(replace(a_report(), g3_population=G3Population(3_100, 150, 420)))
    assert "SÄBO residents (main care there) with a named FLK" in html   # the G3 row and chart
    assert "doctor, SÄBO (main care there)" in html                      # the G4 row
    assert "huvudsakliga hälso- och sjukvård" in html
    assert "now 2950 of 3100 SÄBO residents (150 get it elsewhere, not counted; 420 not recorded, counted)" in html


def test_an_incomplete_window_is_marked_and_never_a_plain_goal_figure():
    html = render_report(a_report(complete=False))
    assert "Not a goal figure" in html and html.count('class="incomplete"') == 3
    assert "incomplete window" in html and "INCOMPLETE (60 % covered)" in html
    assert "incomplete window, not a goal figure" in html               # the chart's legend


def test_units_are_ranked_only_with_a_trustworthy_cohort():
    best, worst = best_and_worst(a_report().units)
    assert [u.name for u in best] == [f"Vårdcentralen {i}" for i in (11, 10, 9, 8, 7)]
    assert [u.name for u in worst] == [f"Vårdcentralen {i}" for i in (1, 2, 3, 4, 5)]
    assert "Not ranked (fewer than 30 eligible patients" in render_report(a_report())


def test_the_report_holds_no_patient_data_and_fetches_nothing():
    html = render_report(a_report())
    assert "pk1_" not in html and not re.search(r"\b\d{8}-?\d{4}\b", html)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html


def test_sections_without_data_say_so_instead_of_failing():
    empty = ReportData("19", "Region X", BASELINE, NOW, datetime(2026, 12, 1, tzinfo=timezone.utc), Coverage(),
                       goals_from({}, {}, {}))
    html = render_report(empty)
    assert "No stored G1/G3 days yet" in html and "No continuity snapshots yet" in html
    assert "No open care gaps" in html and "visit data coverage not recorded" in html
    assert html.count("<svg") == 0


def test_a_region_without_a_pinned_baseline_gets_its_shares_now_and_is_told_how_to_pin_one():
    now_only = ReportData("19", "Region X", None, NOW, datetime(2026, 12, 1, tzinfo=timezone.utc), Coverage(),
                          goals_from({}, {"G1": Estimate(0.45, n=281_000), "G3": Estimate(0.71, n=2_950)}, {}),
                          shares=a_report().shares)
    html = render_report(now_only)
    assert "no baseline pinned yet" in html and "flk continuity baseline pin" in html
    assert "45.0 %" in html and html.count("<svg") == 1      # G1/G3 over time, no baseline line
    assert ">baseline<" not in html


def test_the_charts_mark_incomplete_windows_and_draw_each_target_from_the_baseline():
    partial = render_report(a_report(complete=False))
    assert ">incomplete windows<" in partial                               # the shaded band's label (SVG text)
    assert "target: baseline" not in partial    # the baseline's own window is incomplete: no target from it
    html = render_report(a_report())
    assert ">incomplete windows<" not in html
    assert "target: baseline +20 %" in html                                # G2
    assert "baseline level: the target is a significant rise above it" in html  # G4
    assert "Period 2025-12-01 – 2026-12-01" in html


def test_units_without_names_read_by_the_reporting_role_are_shown_once_by_hsa_id():
    report = a_report()
    report.units = [dataclasses.replace(u, name=u.unit_id) for u in report.units]
    html = render_report(report)
    assert '<th class="hsa">HSA-id</th>' not in html and "Units by HSA-id" in html
    assert "<td>SE2321000016-VC000011</td><td>0.630" in html
    assert '<th class="hsa">HSA-id</th>' in render_report(a_report())
