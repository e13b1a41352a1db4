"""The main job's goal summary: targets, changes and status per goal, and the terminal table."""
from __future__ import annotations

from datetime import date

import pytest

from flk.mainjob.goals import AlertFigures, DeadLetters, Goal, Summary, goals_from, render_summary
from flk.mainjob.job import _Split
from flk.simulator.generate import Emitted


def share(value, baseline, target=0.55):
    return Goal("G1", "named FLK", "share", target, value, baseline, "listing.kpi_g1_region")


def index(value, baseline, target=0.20):
    return Goal("G2", "COC doctor", "index", target, value, baseline, "continuity.coc_vs_baseline")


@pytest.mark.parametrize(("goal", "change", "met"), [
    (share(0.56, 0.45), 0.11, True),
    (share(0.54, 0.45), 0.09, False),
    (index(0.48, 0.40), 0.20, True),
    (index(0.47, 0.40), 0.175, False),
    (index(0.41, 0.40, target=0.0), 0.025, True),  # G4: any increase
    (index(0.40, 0.40, target=0.0), 0.0, False),
])
def test_a_goal_is_met_against_its_own_kind_of_target(goal, change, met):
    assert goal.change == pytest.approx(change)
    assert goal.met is met


def test_a_share_goal_is_judged_on_its_value_even_without_a_baseline():
    goal = share(0.60, None)
    assert goal.change is None
    assert goal.met is True


def test_an_index_goal_without_a_baseline_is_undecided():
    assert index(0.5, None).met is None
    assert index(None, 0.4).met is None
    assert index(0.5, 0.0).change is None


def test_goals_cover_g1_to_g4_with_doctor_and_total_continuity_for_g2():
    goals = goals_from({"G1": 0.45, "G3": 0.70}, {"G1": 0.50, "G3": 0.75},
                       {("all", "doctor"): (0.30, 0.33), ("all", "total"): (0.20, 0.21),
                        ("sabo", "doctor"): (0.40, 0.44), ("sabo", "total"): (0.3, 0.3)})
    assert [g.goal for g in goals] == ["G1", "G2", "G2", "G3", "G4"]
    g1, g2_doctor, g2_total, g3, g4 = goals
    assert (g1.value, g1.baseline, g1.target) == (0.50, 0.45, 0.55)
    assert (g2_doctor.baseline, g2_doctor.value) == (0.30, 0.33)
    assert (g2_total.baseline, g2_total.value) == (0.20, 0.21)
    assert (g3.value, g3.target) == (0.75, 0.80)
    assert (g4.baseline, g4.value, g4.target) == (0.40, 0.44, 0.0)


def test_the_summary_table_shows_value_target_baseline_change_and_status():
    goals = goals_from({"G1": 0.45, "G3": 0.70}, {"G1": 0.50, "G3": 0.82},
                       {("all", "doctor"): (0.30, 0.36), ("all", "total"): (0.20, 0.21),
                        ("sabo", "doctor"): (0.40, 0.44)})
    text = render_summary(Summary("Region X", "small", (date(2025, 1, 1), date(2025, 12, 31)), date(2025, 7, 1),
                                  goals, AlertFigures(3, 10, 4, {"email": 4, "teams": 4}, 0, 0, 4, 4),
                                  DeadLetters(2, {"ehr.visits.v1.dlq": 2}), 42.0))
    g1 = next(line for line in text.splitlines() if line.strip().startswith("G1"))
    assert "50.0 %" in g1 and "≥ 55 %" in g1 and "45.0 %" in g1 and "+5.0 pp" in g1 and g1.endswith("not met")
    g2 = next(line for line in text.splitlines() if "doctor contacts" in line)
    assert "0.360" in g2 and "+20 %" in g2 and "0.300" in g2 and "+20.0 %" in g2 and g2.endswith("met")
    g3 = next(line for line in text.splitlines() if line.strip().startswith("G3"))
    assert g3.endswith("met") and "≥ 80 %" in g3
    assert "G4" in text and "increase" in text
    assert "Alerts: 4 planned; deliveries sent: 4 by email, 4 by teams" in text
    assert "Dead-lettered events: 2 (ehr.visits.v1.dlq 2)" in text


def test_missing_figures_read_as_not_available_not_as_zero():
    text = render_summary(Summary("Region X", "small", (date(2025, 1, 1), date(2025, 12, 31)), date(2025, 7, 1),
                                  goals_from({}, {}, {}), AlertFigures(), DeadLetters(0, {})))
    g1 = next(line for line in text.splitlines() if line.strip().startswith("G1"))
    assert "n/a" in g1 and "0.0 %" not in g1
    assert "every *.dlq topic is empty" in text


def test_the_replay_splits_at_the_baseline_without_losing_or_repeating_an_item():
    items = [Emitted("t", {"i": i}, at) for i, at in enumerate([1, 5, 9, 10, 11, 20])]
    split = _Split(iter(items), until_ts=10)
    before = list(split.before())
    after = list(split.after())
    assert [e.at for e in before] == [1, 5, 9]
    assert [e.at for e in after] == [10, 11, 20]


def test_each_month_is_replayed_facts_first_then_commands_and_visits_in_stream_order():
    from datetime import datetime, timezone

    from flk.mainjob.job import monthly_chunks

    def at(month: int, day: int) -> int:
        return int(datetime(2026, month, day, tzinfo=timezone.utc).timestamp())

    items = [Emitted("person.registered.v1", {"n": 1}, at(1, 1)),
             Emitted("listing.request.v1", {"n": 2}, at(1, 1)),
             Emitted("visit.recorded.v1", {"n": 3}, at(1, 20)),
             Emitted("person.registered.v1", {"n": 4}, at(1, 31)),
             Emitted("sim.unit", {"n": 5}, at(1, 31)),
             Emitted("fast_lakarkontakt.assign.v1", {"n": 6}, at(2, 2)),
             Emitted("risk.assessed.v1", {"n": 7}, at(2, 3))]
    chunks = [([f.data["n"] for f in facts], [r.data["n"] for r in rest]) for facts, rest in monthly_chunks(iter(items))]
    assert chunks == [([1, 4], [2, 3, 5]), ([7], [6])]
