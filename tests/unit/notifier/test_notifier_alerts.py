"""Specification of alert planning: routing, digest, immediate batches, quiet hours, escalation."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.notifier.domain.alerts import (
    AlertKind,
    AlertMode,
    OpenGapRow,
    QuietHours,
    UnitGapSummary,
    UnitRouting,
    alert_id_for_digest,
    next_planning_time,
    plan_alerts,
    summarize,
)
from services.notifier.domain.care_gaps import CareGapOpened, GapCause

pytestmark = pytest.mark.unit

STHLM = ZoneInfo("Europe/Stockholm")
UTC = timezone.utc


def local(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=STHLM)


def gap(n: int, opened_at: datetime, unit="SE2321000016-15CQ", cause=GapCause.NEVER_ASSIGNED, rub=5, sabo=False):
    return OpenGapRow(uuid.uuid5(uuid.NAMESPACE_OID, f"gap{n}"), unit, cause, rub, sabo, opened_at)


UNIT = "SE2321000016-15CQ"


def routing(**overrides) -> UnitRouting:
    values = dict(
        unit_id=UNIT,
        unit_name="Hälsocentralen Norrliden",
        email_to=("vc-norrliden@example.se",),
        teams_webhook_secret_ref="teams-webhook-norrliden",
    )
    values.update(overrides)
    return UnitRouting(**values)


def record(sent: set, alerts) -> set:
    for a in alerts:
        sent |= a.dedup_ids
    return sent


# ---- daily digest (the default) -----------------------------------------------------------


def test_daily_digest_is_the_default_mode():
    assert routing().mode is AlertMode.DAILY_DIGEST


def test_daily_digest_is_sent_once_per_unit_and_day_at_digest_hour():
    r = routing(digest_hour=7)
    gaps = [gap(1, local(2025, 1, 10, 12)), gap(2, local(2025, 1, 12, 9))]
    assert plan_alerts(r, gaps, set(), local(2025, 1, 15, 6, 59)) == []
    [digest] = plan_alerts(r, gaps, set(), local(2025, 1, 15, 7, 0))
    assert digest.kind is AlertKind.DAILY_DIGEST and digest.gap_count == 2
    assert digest.alert_id == alert_id_for_digest(UNIT, local(2025, 1, 15, 7).date())
    sent = record(set(), [digest])
    assert plan_alerts(r, gaps, sent, local(2025, 1, 15, 16)) == []
    [tomorrow] = plan_alerts(r, gaps, sent, local(2025, 1, 16, 7, 5))
    assert tomorrow.alert_id != digest.alert_id


def test_digest_hour_is_stockholm_local_time_in_summer_and_winter():
    r = routing(digest_hour=7, escalation_after_days=None)
    gaps = [gap(1, local(2025, 1, 1, 12))]
    assert plan_alerts(r, gaps, set(), datetime(2025, 7, 1, 4, 59, tzinfo=UTC)) == []  # 06:59 CEST
    assert len(plan_alerts(r, gaps, set(), datetime(2025, 7, 1, 5, 0, tzinfo=UTC))) == 1
    assert plan_alerts(r, gaps, set(), datetime(2025, 12, 1, 5, 59, tzinfo=UTC)) == []  # 06:59 CET
    assert len(plan_alerts(r, gaps, set(), datetime(2025, 12, 1, 6, 0, tzinfo=UTC))) == 1


def test_missed_digest_is_still_sent_later_the_same_day():
    r = routing(escalation_after_days=None)
    [digest] = plan_alerts(r, [gap(1, local(2025, 1, 1, 12))], set(), local(2025, 1, 15, 14))
    assert digest.digest_date == local(2025, 1, 15, 14).date()


def test_no_digest_without_open_gaps_unless_configured():
    assert plan_alerts(routing(), [], set(), local(2025, 1, 15, 8)) == []
    [empty] = plan_alerts(routing(digest_when_empty=True), [], set(), local(2025, 1, 15, 8))
    assert empty.gap_count == 0


def test_next_planning_time_is_the_next_digest():
    r = routing(digest_hour=7)
    gaps = [gap(1, local(2025, 1, 14, 12))]
    assert next_planning_time(r, gaps, set(), local(2025, 1, 15, 6)) == local(2025, 1, 15, 7)
    sent = {alert_id_for_digest(UNIT, local(2025, 1, 15, 7).date())}
    assert next_planning_time(r, gaps, sent, local(2025, 1, 15, 8)) == local(2025, 1, 16, 7)


# ---- immediate -------------------------------------------------------------------------------


def test_immediate_mode_sends_one_alert_per_batch_of_new_gaps():
    r = routing(mode=AlertMode.IMMEDIATE)
    now = local(2025, 1, 15, 10)
    first = [gap(1, now - timedelta(hours=2)), gap(2, now - timedelta(hours=1))]
    [alert] = plan_alerts(r, first, set(), now)
    assert alert.kind is AlertKind.NEW_GAPS and alert.gap_count == 2
    sent = record(set(), [alert])
    assert plan_alerts(r, first, sent, now + timedelta(minutes=5)) == []
    [second] = plan_alerts(r, first + [gap(3, now)], sent, now + timedelta(minutes=10))
    assert second.gap_count == 1 and second.alert_id != alert.alert_id


def test_immediate_alert_id_is_deterministic_so_a_resend_is_detected():
    r = routing(mode=AlertMode.IMMEDIATE)
    now = local(2025, 1, 15, 10)
    gaps = [gap(1, now), gap(2, now)]
    [a] = plan_alerts(r, gaps, set(), now)
    [b] = plan_alerts(r, list(reversed(gaps)), set(), now + timedelta(minutes=1))
    assert a.alert_id == b.alert_id
    assert plan_alerts(r, gaps, {a.alert_id}, now) == []


def test_rows_of_other_units_are_ignored():
    r = routing(mode=AlertMode.IMMEDIATE)
    assert plan_alerts(r, [gap(1, local(2025, 1, 1, 9), unit="OTHER")], set(), local(2025, 1, 15, 10)) == []


def test_unit_without_any_channel_gets_no_alert():
    r = routing(mode=AlertMode.IMMEDIATE, email_to=(), teams_webhook_secret_ref=None, escalation_after_days=None)
    assert plan_alerts(r, [gap(1, local(2025, 1, 15, 9))], set(), local(2025, 1, 15, 10)) == []


# ---- quiet hours ---------------------------------------------------------------------------------


def test_quiet_hours_defer_immediate_alert():
    r = routing(mode=AlertMode.IMMEDIATE, quiet_hours=QuietHours(time(22), time(7)))
    late = local(2025, 1, 15, 23, 30)
    gaps = [gap(1, late)]
    assert plan_alerts(r, gaps, set(), late) == []
    assert next_planning_time(r, gaps, set(), late) == local(2025, 1, 16, 7)
    assert plan_alerts(r, gaps, set(), local(2025, 1, 16, 6, 59)) == []
    [alert] = plan_alerts(r, gaps, set(), local(2025, 1, 16, 7))
    assert alert.kind is AlertKind.NEW_GAPS


@pytest.mark.parametrize(
    ("at", "quiet"),
    [
        (time(21, 59), False),
        (time(22, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(3, 0), True),
        (time(6, 59), True),
        (time(7, 0), False),
        (time(12, 0), False),
    ],
)
def test_overnight_quiet_hours_wrap_midnight(at, quiet):
    assert QuietHours(time(22), time(7)).contains(at) is quiet


@pytest.mark.parametrize(("at", "quiet"), [(time(11, 59), False), (time(12), True), (time(13), False)])
def test_quiet_hours_within_one_day(at, quiet):
    assert QuietHours(time(12), time(13)).contains(at) is quiet


def test_equal_start_and_end_means_no_quiet_hours():
    assert not QuietHours(time(8), time(8)).contains(time(8))


def test_quiet_hours_end_is_found_across_midnight():
    q = QuietHours(time(22), time(7))
    assert q.end_after(local(2025, 1, 15, 23), STHLM) == local(2025, 1, 16, 7)
    assert q.end_after(local(2025, 1, 16, 3), STHLM) == local(2025, 1, 16, 7)


# ---- escalation -----------------------------------------------------------------------------------


def test_escalation_once_when_a_gap_has_been_open_for_n_days():
    r = routing(escalation_after_days=14, escalation_email="verksamhetschef@example.se")
    opened = local(2025, 1, 1, 10)
    gaps = [gap(1, opened), gap(2, opened + timedelta(days=5))]
    sent = {alert_id_for_digest(UNIT, d.date()) for d in (local(2025, 1, 14, 7), local(2025, 1, 15, 7))}
    assert plan_alerts(r, gaps, sent, opened + timedelta(days=14) - timedelta(minutes=1)) == []
    [esc] = plan_alerts(r, gaps, sent, opened + timedelta(days=14))
    assert esc.kind is AlertKind.ESCALATION and esc.gap_count == 1
    assert esc.email_to == ("verksamhetschef@example.se",) and esc.teams_webhook_secret_ref is None
    sent = record(sent, [esc])
    assert plan_alerts(r, gaps, sent, opened + timedelta(days=14, hours=1)) == []
    assert next_planning_time(r, gaps, sent, opened + timedelta(days=14, hours=1)) == min(
        opened + timedelta(days=19), local(2025, 1, 16, 7)
    )


def test_escalation_without_a_contact_goes_to_the_unit_channels():
    r = routing(mode=AlertMode.IMMEDIATE, escalation_after_days=3)
    opened = local(2025, 1, 1, 10)
    gaps = [gap(1, opened)]
    sent = record(set(), plan_alerts(r, gaps, set(), opened))
    [esc] = plan_alerts(r, gaps, sent, opened + timedelta(days=3))
    assert esc.email_to == r.email_to and esc.teams_webhook_secret_ref == r.teams_webhook_secret_ref


def test_escalation_is_deferred_by_quiet_hours():
    r = routing(mode=AlertMode.IMMEDIATE, escalation_after_days=3, escalation_email="chef@example.se")
    opened = local(2025, 1, 1, 23)
    gaps = [gap(1, opened)]
    sent = record(set(), plan_alerts(r, gaps, set(), local(2025, 1, 2, 7)))
    assert plan_alerts(r, gaps, sent, opened + timedelta(days=3)) == []
    assert next_planning_time(r, gaps, sent, opened - timedelta(hours=1) + timedelta(days=3)) == local(2025, 1, 5, 7)
    [esc] = plan_alerts(r, gaps, sent, local(2025, 1, 5, 7))
    assert esc.kind is AlertKind.ESCALATION


def test_escalation_can_be_switched_off():
    r = routing(mode=AlertMode.IMMEDIATE, escalation_after_days=None)
    opened = local(2025, 1, 1, 10)
    sent = record(set(), plan_alerts(r, [gap(1, opened)], set(), opened))
    assert plan_alerts(r, [gap(1, opened)], sent, opened + timedelta(days=365)) == []


# ---- routing validation ---------------------------------------------------------------------------


def test_routing_refuses_a_webhook_url_in_place_of_the_secret_reference():
    with pytest.raises(ValueError, match="secret"):
        routing(teams_webhook_secret_ref="https://prod-00.westeurope.logic.azure.com/workflows/abc")


def test_routing_refuses_a_digest_hour_inside_quiet_hours():
    with pytest.raises(ValueError, match="quiet"):
        routing(digest_hour=23, quiet_hours=QuietHours(time(22), time(7)))


def test_routing_accepts_a_single_escalation_address():
    assert routing(escalation_email="chef@example.se").escalation_email == ("chef@example.se",)


# ---- summary ----------------------------------------------------------------------------------------


def test_summary_counts_by_cause_rub_and_sabo_and_gives_oldest_age():
    now = local(2025, 2, 1, 12)
    rows = [
        gap(1, now - timedelta(days=17, hours=3), cause=GapCause.DOCTOR_LEFT, rub=5),
        gap(2, now - timedelta(days=2), cause=GapCause.DOCTOR_LEFT, rub=4, sabo=True),
        gap(3, now - timedelta(hours=5), cause=GapCause.LOCUM_LIST, rub=None, sabo=True),
    ]
    s = summarize(UNIT, rows, now)
    assert s.total == 3
    assert s.by_cause == ((GapCause.LOCUM_LIST, 1), (GapCause.DOCTOR_LEFT, 2))
    assert s.count_for(GapCause.NEVER_ASSIGNED) == 0
    assert s.by_rub == ((5, 1), (4, 1), (None, 1))
    assert s.sabo == 2
    assert s.oldest_age_days == 17


def test_summary_of_no_gaps_has_no_oldest_age():
    s = summarize(UNIT, [], local(2025, 2, 1, 12))
    assert (s.total, s.oldest_age_days) == (0, None)


def test_summary_refuses_rows_of_another_unit():
    with pytest.raises(ValueError):
        summarize(UNIT, [gap(1, local(2025, 1, 1, 1), unit="OTHER")], local(2025, 2, 1, 12))


@pytest.mark.parametrize("cls", [OpenGapRow, UnitGapSummary])
def test_alerting_types_have_no_field_for_a_patient_identifier(cls):
    names = {f.name for f in dataclasses.fields(cls)}
    assert not names & {"patient_key", "personnummer", "name", "patient_name", "patient_id"}


def test_gap_row_from_opened_event_drops_the_patient_key():
    event = CareGapOpened(uuid.uuid4(), "191212121212", UNIT, GapCause.RELISTED, 4, False, local(2025, 1, 1, 9))
    row = OpenGapRow.from_opened(event)
    assert "191212121212" not in repr(row)
    assert (row.cause, row.rub, row.unit_id) == (GapCause.RELISTED, 4, UNIT)
