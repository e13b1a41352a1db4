"""The fast-vårdkontakt care gap (issue 13, item 6; seed 004, Kalmar): "Vårdenheten ska säkerställa att
patienter med ett stort vårdbehov identifierat med hjälp av RUB har en ... fast vårdkontakt". A listed
patient whose latest RUB is in the profile's high-need bands and who has no open fast vårdkontakt gets a
second kind of gap, in regions whose listing profile requires it; its alerts and worklist rows say so."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest

from flk.events.contracts import contracts
from flk.events.envelope import Envelope
from services.notifier.adapters.alert_store import summary_from_json, summary_to_json
from services.notifier.adapters.inbound import FactMapper
from services.notifier.adapters.outbound import gap_event
from services.notifier.adapters.state_codec import UnknownStateFormat, decode_state, encode_state
from services.notifier.domain.alerts import Alert, AlertKind, OpenGapRow, UnitRouting, plan_alerts, summarize
from services.notifier.domain.care_gaps import (
    CarePolicy,
    FvkAppointedFact,
    FvkEndedFact,
    GapCause,
    GapKind,
    GapResolution,
    PersonStatusFact,
    care_gap_id,
)
from services.notifier.domain.messages import render_email, render_teams_card
from services.notifier.domain.worklist import OpenGap, worklist_rows
from services.notifier.settings import NotifierSettings
from tests.unit.notifier.test_notifier_care_gaps import DAY, PNR, T0, Patient, flk, listed, rub, unlisted

pytestmark = pytest.mark.unit

KALMAR = CarePolicy(fast_vardkontakt_rub_bands=frozenset({4, 5}))
NATIONAL = CarePolicy()


def fvk(appointment="V1", unit="U1", at=T0):
    return FvkAppointedFact(PNR, appointment, unit, at)


def fvk_ended(appointment="V1", unit="U1", at=T0):
    return FvkEndedFact(PNR, appointment, unit, at)


def fvk_gaps(events):
    return [e for e in events if e.kind is GapKind.FAST_VARDKONTAKT]


# ---- which patients ----------------------------------------------------------------------------


def test_a_rub_5_patient_without_a_fast_vardkontakt_gets_a_fast_vardkontakt_gap_in_kalmar():
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed(), flk())  # has an FLK: only the fast-vårdkontakt gap
    assert p.at(T0 + 13 * DAY) == []  # grace period, as for the FLK gap
    [opened] = p.at(T0 + 14 * DAY)
    assert opened.kind is GapKind.FAST_VARDKONTAKT
    assert (opened.cause, opened.unit_id, opened.rub, opened.opened_at) == (
        GapCause.NO_FAST_VARDKONTAKT, "U1", 5, T0 + 14 * DAY)
    assert p.state.open_fvk_gap is not None and p.state.open_gap is None


def test_no_fast_vardkontakt_gap_where_the_profile_does_not_require_one():
    p = Patient(NATIONAL)
    p.at(T0, rub(5), listed(), flk())
    assert p.at(T0 + 60 * DAY) == []
    assert p.state.open_fvk_gap is None


def test_the_notifier_raises_fast_vardkontakt_gaps_for_the_bands_it_is_given():
    assert NotifierSettings(fast_vardkontakt_rub_bands=[4, 5]).care_policy.fast_vardkontakt_rub_bands == frozenset({4, 5})
    assert not NotifierSettings().care_policy.requires_fast_vardkontakt
    with pytest.raises(ValueError):
        NotifierSettings(fast_vardkontakt_rub_bands=[6])


@pytest.mark.parametrize("band", [0, 1, 2, 3])
def test_a_patient_below_the_high_need_bands_gets_no_fast_vardkontakt_gap(band):
    p = Patient(KALMAR)
    p.at(T0, rub(band), listed())
    assert fvk_gaps(p.at(T0 + 30 * DAY)) == []


def test_a_rub_4_patient_without_flk_or_fast_vardkontakt_gets_both_gaps_with_different_ids():
    p = Patient(KALMAR)
    p.at(T0, rub(4), listed())
    events = p.at(T0 + 14 * DAY)
    assert sorted(e.kind.value for e in events) == ["fast_lakarkontakt", "fast_vardkontakt"]
    flk_gap, fvk_gap = sorted(events, key=lambda e: e.kind.value)
    assert flk_gap.gap_id != fvk_gap.gap_id
    # the FLK gap keeps the id it had before gap kinds existed (replays give the same ids)
    assert flk_gap.gap_id == care_gap_id(PNR, "U1", "L-U1-20250303", T0 + 14 * DAY)


def test_a_patient_who_has_a_fast_vardkontakt_when_listed_gets_no_gap():
    p = Patient(KALMAR)
    p.at(T0, rub(5), fvk(at=T0 - 30 * DAY), listed(), flk())
    assert p.at(T0 + 30 * DAY) == []


def test_a_sabo_resident_with_a_low_rub_gets_no_fast_vardkontakt_gap():
    from services.notifier.domain.care_gaps import ResidenceFact

    p = Patient(KALMAR)
    p.at(T0, rub(1), listed(), ResidenceFact(PNR, sabo_from=T0, residence_id="R1"))
    assert [e.kind for e in p.at(T0 + 14 * DAY)] == [GapKind.FAST_LAKARKONTAKT]


# ---- resolution --------------------------------------------------------------------------------


def test_appointing_a_fast_vardkontakt_resolves_the_gap():
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed(), flk())
    [opened] = p.at(T0 + 14 * DAY)
    [resolved] = p.at(T0 + 20 * DAY, fvk(at=T0 + 20 * DAY))
    assert (resolved.gap_id, resolved.kind, resolved.resolution, resolved.resolved_at) == (
        opened.gap_id, GapKind.FAST_VARDKONTAKT, GapResolution.FAST_VARDKONTAKT_APPOINTED, T0 + 20 * DAY)
    assert p.state.open_fvk_gap is None


def test_assigning_an_flk_does_not_resolve_the_fast_vardkontakt_gap():
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed())
    p.at(T0 + 14 * DAY)
    [resolved] = p.at(T0 + 15 * DAY, flk(at=T0 + 15 * DAY))
    assert (resolved.kind, resolved.resolution) == (GapKind.FAST_LAKARKONTAKT, GapResolution.FAST_LAKARKONTAKT_ASSIGNED)
    assert p.state.open_fvk_gap is not None


def test_a_fast_vardkontakt_that_ends_reopens_a_gap_with_cause_ended_and_a_new_id():
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed(), flk())
    [first] = p.at(T0 + 14 * DAY)
    p.at(T0 + 20 * DAY, fvk(at=T0 + 20 * DAY))
    [second] = p.at(T0 + 40 * DAY, fvk_ended(at=T0 + 40 * DAY))
    assert (second.kind, second.cause, second.opened_at) == (
        GapKind.FAST_VARDKONTAKT, GapCause.FAST_VARDKONTAKT_ENDED, T0 + 40 * DAY)
    assert second.gap_id != first.gap_id


@pytest.mark.parametrize("fact, resolution", [
    (lambda: listed("U2", at=T0 + 20 * DAY), GapResolution.RELISTED),
    (lambda: unlisted(at=T0 + 20 * DAY), GapResolution.LISTING_ENDED),
    (lambda: PersonStatusFact(PNR, T0 + 20 * DAY, deceased=True), GapResolution.DECEASED),
    (lambda: PersonStatusFact(PNR, T0 + 20 * DAY, emigrated=True), GapResolution.EMIGRATED),
    (lambda: rub(2, at=T0 + 20 * DAY), GapResolution.NO_LONGER_QUALIFIES),
])
def test_the_fast_vardkontakt_gap_resolves_like_the_flk_gap(fact, resolution):
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed(), flk())
    p.at(T0 + 14 * DAY)
    resolved = fvk_gaps(p.at(T0 + 20 * DAY, fact()))
    assert [(e.resolution, type(e).__name__) for e in resolved] == [(resolution, "CareGapResolved")]


def test_relisted_elsewhere_the_gap_reopens_at_the_new_unit_after_its_grace_period():
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed(), flk())
    p.at(T0 + 14 * DAY)
    p.at(T0 + 20 * DAY, listed("U2", at=T0 + 20 * DAY), flk("A2", unit="U2", at=T0 + 20 * DAY))
    assert fvk_gaps(p.at(T0 + 33 * DAY)) == []
    [opened] = fvk_gaps(p.at(T0 + 34 * DAY))
    assert (opened.unit_id, opened.kind) == ("U2", GapKind.FAST_VARDKONTAKT)


def test_a_gap_opened_under_a_requiring_profile_resolves_when_the_profile_no_longer_requires_it():
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed(), flk())
    p.at(T0 + 14 * DAY)
    p.policy = NATIONAL
    [resolved] = p.at(T0 + 15 * DAY)
    assert (resolved.kind, resolved.resolution) == (GapKind.FAST_VARDKONTAKT, GapResolution.NO_LONGER_QUALIFIES)


# ---- redelivery and order ----------------------------------------------------------------------


def test_redelivered_and_out_of_order_fast_vardkontakt_facts_change_nothing():
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed(), flk())
    [opened] = p.at(T0 + 14 * DAY)
    p.at(T0 + 20 * DAY, fvk(at=T0 + 20 * DAY))
    state = p.state
    assert p.at(T0 + 21 * DAY, fvk(at=T0 + 20 * DAY)) == [] and p.state == state  # redelivery
    # the end arrives before the appointment: the late appointment does not count
    q = Patient(KALMAR)
    q.at(T0, rub(5), listed(), flk())
    q.at(T0 + 1 * DAY, fvk_ended("V9", at=T0 + 5 * DAY))
    q.at(T0 + 2 * DAY, fvk("V9", at=T0))
    assert fvk_gaps(q.at(T0 + 14 * DAY))[0].gap_id == opened.gap_id  # same facts, same id


def test_the_same_facts_replayed_give_the_same_gap_ids():
    def run():
        p = Patient(KALMAR)
        p.at(T0, rub(5), listed())
        p.at(T0 + 14 * DAY)
        p.at(T0 + 20 * DAY, fvk(at=T0 + 20 * DAY))
        p.at(T0 + 30 * DAY, fvk_ended(at=T0 + 30 * DAY))
        return [(type(e).__name__, e.gap_id, e.kind) for e in p.events]
    assert run() == run()


# ---- state format ------------------------------------------------------------------------------


def test_a_state_stored_before_fast_vardkontakt_decodes_and_an_flk_only_state_is_stored_as_before():
    p = Patient(NATIONAL)
    p.at(T0, rub(5), listed())
    p.at(T0 + 14 * DAY)
    raw = encode_state(p.state)
    assert "_format" not in raw and "open_fvk_gap" not in raw  # format 1, byte for byte as before
    assert "kind" not in raw["open_gap"]
    assert decode_state(json.loads(json.dumps(raw))) == p.state


def test_a_state_with_fast_vardkontakt_data_is_format_2_and_round_trips():
    p = Patient(KALMAR)
    p.at(T0, rub(5), listed(), flk())
    p.at(T0 + 14 * DAY)
    p.at(T0 + 15 * DAY, fvk("V1", at=T0 + 15 * DAY), fvk_ended("V1", at=T0 + 16 * DAY))
    p.at(T0 + 17 * DAY)
    raw = encode_state(p.state)
    assert raw["_format"] == 2 and raw["open_fvk_gap"]["kind"] == "fast_vardkontakt"
    assert decode_state(json.loads(json.dumps(raw))) == p.state
    with pytest.raises(UnknownStateFormat):
        decode_state({**raw, "_format": 3})


# ---- wire: consumed and published events ---------------------------------------------------------


def _envelope(event_type: str, data: dict) -> Envelope:
    return Envelope(str(uuid.uuid4()), event_type, "urn:test", datetime(2026, 3, 2, 9, tzinfo=timezone.utc),
                    data["patient_key"], data)


def test_fast_vardkontakt_events_map_to_facts():
    key = "pk1_" + "a" * 26
    base = {"appointment_id": str(uuid.uuid4()), "patient_key": key, "care_unit_id": "SE2321000016-VCA1",
            "practitioner_id": "SE2321000016-SSK1"}
    appointed = {**base, "profession": "sjukskoterska", "appointed_on": "2026-03-02"}
    ended = {**base, "ended_on": "2026-03-02", "reason": "ended_by_unit"}
    contracts().validate("fast_vardkontakt.appointed.v1", appointed)
    contracts().validate("fast_vardkontakt.ended.v1", ended)
    [a] = FactMapper().facts(_envelope("fast_vardkontakt.appointed.v1", appointed))
    [e] = FactMapper().facts(_envelope("fast_vardkontakt.ended.v1", ended))
    assert isinstance(a, FvkAppointedFact) and isinstance(e, FvkEndedFact)
    assert (a.appointment_id, a.unit_id, a.appointed_at) == (
        base["appointment_id"], base["care_unit_id"], datetime(2026, 3, 2, 9, tzinfo=timezone.utc))


def test_published_gap_events_carry_their_kind_and_satisfy_the_contracts():
    p = Patient(KALMAR, key="pk1_" + "b" * 26)
    from tests.unit.notifier.test_notifier_care_gaps import listed as listed_, rub as rub_

    key = "pk1_" + "b" * 26
    p.at(T0, rub_(5, key=key), listed_(key=key, unit="SE2321000016-VCA1"))
    events = p.at(T0 + 14 * DAY)
    p.at(T0 + 20 * DAY, FvkAppointedFact(key, "V1", "SE2321000016-VCA1", T0 + 20 * DAY))
    published = [gap_event(e) for e in p.events]  # validated against the contracts inside
    kinds = sorted((e.event_type, e.data["kind"]) for e in published)
    assert kinds == [("care_gap.opened.v1", "fast_lakarkontakt"), ("care_gap.opened.v1", "fast_vardkontakt"),
                     ("care_gap.resolved.v1", "fast_vardkontakt")]
    resolved = next(e for e in published if e.event_type == "care_gap.resolved.v1")
    assert resolved.data["resolution"] == "fast_vardkontakt_appointed"
    assert len({e.event_id for e in published}) == 3 and len(events) == 2


# ---- alerts and worklist -------------------------------------------------------------------------

UNIT = "SE2321000016-VCA1"
ROUTING = UnitRouting(UNIT, "VC Centrum", email_to=("vc@example.se",), teams_webhook_secret_ref="teams-vca1",
                      mode="immediate", quiet_hours=None)
URL = "https://flk.example.se/units/SE2321000016-VCA1/worklist"


def _row(kind: GapKind, cause: GapCause, n: int) -> OpenGapRow:
    return OpenGapRow(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}{n}"), UNIT, cause, 5, False, T0, kind)


def _render(rows):
    [alert] = plan_alerts(ROUTING, rows, set(), T0 + DAY)
    summary = summarize(UNIT, rows, T0 + DAY)
    return alert, render_email(alert, summary, URL), json.dumps(render_teams_card(alert, summary, URL),
                                                                ensure_ascii=False)


def test_an_alert_about_fast_vardkontakt_gaps_says_the_patients_lack_a_fast_vardkontakt():
    rows = [_row(GapKind.FAST_VARDKONTAKT, GapCause.NO_FAST_VARDKONTAKT, n) for n in range(2)]
    alert, email, teams = _render(rows)
    assert alert.gap_kinds == ((GapKind.FAST_VARDKONTAKT, 2),)
    assert "saknar fast vårdkontakt" in email.subject and "läkarkontakt" not in email.subject
    assert "Har ingen fast vårdkontakt" in email.text_body and "Saknar fast vårdkontakt: 2" in email.text_body
    assert "saknar fast vårdkontakt" in teams and "Saknar fast vårdkontakt" in teams
    assert "(RUB 4–5)" in email.text_body and "SÄBO" not in email.text_body


def test_an_alert_about_both_kinds_names_both_and_counts_each():
    rows = [_row(GapKind.FAST_LAKARKONTAKT, GapCause.NEVER_ASSIGNED, 1),
            _row(GapKind.FAST_VARDKONTAKT, GapCause.NO_FAST_VARDKONTAKT, 2)]
    _alert, email, teams = _render(rows)
    assert "saknar fast läkarkontakt eller fast vårdkontakt" in email.subject
    assert "Saknar fast läkarkontakt: 1" in email.text_body and "Saknar fast vårdkontakt: 1" in email.text_body
    assert "Typ av vårdlucka" in email.html_body and "Typ av vårdlucka" in teams


def test_an_flk_only_alert_reads_as_before():
    rows = [_row(GapKind.FAST_LAKARKONTAKT, GapCause.NEVER_ASSIGNED, 1)]
    _alert, email, _teams = _render(rows)
    assert email.subject == "Ny vårdlucka: 1 patient med stort vårdbehov saknar fast läkarkontakt – VC Centrum"
    assert "Typ av vårdlucka" not in email.text_body


def test_a_summary_stored_before_gap_kinds_existed_reads_as_flk_gaps():
    rows = [_row(GapKind.FAST_VARDKONTAKT, GapCause.NO_FAST_VARDKONTAKT, 1)]
    summary = summarize(UNIT, rows, T0)
    assert summary_from_json(summary_to_json(summary)) == summary
    legacy = summary_to_json(summarize(UNIT, [_row(GapKind.FAST_LAKARKONTAKT, GapCause.NEVER_ASSIGNED, 1)], T0))
    del legacy["by_kind"]
    assert summary_from_json(legacy).by_kind == ((GapKind.FAST_LAKARKONTAKT, 1),)
    old_alert = Alert(uuid.uuid4(), AlertKind.NEW_GAPS, UNIT, "VC", 1, (), None, frozenset())
    assert old_alert.kinds == {GapKind.FAST_LAKARKONTAKT}


def test_the_worklist_shows_which_contact_is_missing_and_offers_flk_assignment_only_for_flk_gaps():
    from zoneinfo import ZoneInfo

    gaps = [OpenGap(uuid.uuid4(), "pk1_" + "c" * 26, UNIT, GapCause.NEVER_ASSIGNED, 5, False, T0),
            OpenGap(uuid.uuid4(), "pk1_" + "c" * 26, UNIT, GapCause.NO_FAST_VARDKONTAKT, 5, False, T0 + DAY,
                    GapKind.FAST_VARDKONTAKT)]
    flk_row, fvk_row = worklist_rows(gaps, {}, False, T0 + 2 * DAY, ZoneInfo("Europe/Stockholm"))
    assert (flk_row.kind_text, flk_row.assignable) == ("Saknar fast läkarkontakt", True)
    assert (fvk_row.kind_text, fvk_row.assignable, fvk_row.cause_text) == (
        "Saknar fast vårdkontakt", False, "Har ingen fast vårdkontakt")
    assert "pk1_" not in repr(gaps[1])
