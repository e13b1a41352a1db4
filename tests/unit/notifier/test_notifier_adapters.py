"""The notifier's adapters that need no I/O: state codec, event <-> fact mapping, secrets,
routing validation, settings, and the privacy boundary of the alert path."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flk.events.contracts import contracts
from flk.events.envelope import derived_id, make_record, read_record
from services.notifier.adapters.inbound import FactMapper
from services.notifier.adapters.outbound import alert_delivered_event, gap_event
from services.notifier.adapters.secrets import ChainedSecretStore, DirSecretStore, EnvSecretStore, MemorySecretStore, env_var_for
from services.notifier.adapters.senders import build_message
from services.notifier.adapters.state_codec import decode_state, encode_state
from services.notifier.domain.care_gaps import (
    CarePolicy,
    FlkAssignedFact,
    FlkEndedFact,
    FlkEndReason,
    GapCause,
    ListingEndedFact,
    ListingEndReason,
    ListingStartedFact,
    PersonStatusFact,
    ResidenceFact,
    RiskAssessedFact,
    apply,
    initial_state,
)
from services.notifier.domain.messages import RenderedEmail
from services.notifier.service_layer.routing import build_routing
from services.notifier.settings import NotifierSettings
from tests.support.builders import UNIT_A, a_patient_key

pytestmark = pytest.mark.unit

UTC = timezone.utc
STHLM = ZoneInfo("Europe/Stockholm")
KEY = a_patient_key(7)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


# ---- state codec ---------------------------------------------------------------------------------

facts = st.one_of(
    st.builds(lambda n, u, d: ListingStartedFact(KEY, f"L{n}", u, T0 + timedelta(days=d)),
              st.integers(0, 2), st.sampled_from(["U1", "U2"]), st.integers(0, 30)),
    st.builds(lambda n, u, d, r: ListingEndedFact(KEY, f"L{n}", u, T0 + timedelta(days=d), r),
              st.integers(0, 2), st.sampled_from(["U1", "U2"]), st.integers(0, 30), st.sampled_from(ListingEndReason)),
    st.builds(lambda n, u, d, f: FlkAssignedFact(KEY, f"A{n}", u, "doc", T0 + timedelta(days=d), f),
              st.integers(0, 2), st.sampled_from(["U1", "U2"]), st.integers(0, 30), st.booleans()),
    st.builds(lambda n, u, d, r: FlkEndedFact(KEY, f"A{n}", u, T0 + timedelta(days=d), r),
              st.integers(0, 2), st.sampled_from(["U1", "U2"]), st.integers(0, 30), st.sampled_from(FlkEndReason)),
    st.builds(lambda rub, d: RiskAssessedFact(KEY, rub, T0 + timedelta(days=d)), st.integers(0, 5), st.integers(0, 30)),
    st.builds(lambda d, n, main: ResidenceFact(KEY, T0 + timedelta(days=d), None if n is None else T0 + timedelta(days=d + n),
                                               main_care_in_residence=main),
              st.integers(0, 30), st.none() | st.integers(0, 20), st.none() | st.booleans()),
    st.builds(lambda d, dead: PersonStatusFact(KEY, T0 + timedelta(days=d), deceased=dead),
              st.integers(0, 30), st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(facts, st.integers(0, 40)), max_size=12))
def test_stored_state_decodes_to_the_same_state(steps):
    state = initial_state(KEY)
    for fact, day in steps:
        now = T0 + timedelta(days=day)
        state, _ = apply(state, fact, now, CarePolicy(grace_days=3))
        assert decode_state(encode_state(state)) == state


def test_stored_state_is_compact_for_a_listed_patient():
    state, _ = apply(initial_state(KEY), ListingStartedFact(KEY, "L1", UNIT_A, T0), T0)
    assert set(encode_state(state)) == {"patient_key", "listing"}


# ---- events -> facts -----------------------------------------------------------------------------


def _envelope(event_type: str, data: dict, time: datetime | None = None):
    record = make_record(event_type, data, source="urn:test", time=time)
    return read_record(record.topic, record.key, record.value, record.headers)


def test_a_date_becomes_the_events_own_time_when_produced_that_local_day_else_local_midnight():
    data = {"listing_id": str(uuid.uuid4()), "patient_key": KEY, "care_unit_id": UNIT_A, "started_on": "2026-03-02",
            "responsibility_from": "2026-03-03", "origin": "active_choice", "initiated_by": "person"}
    same_day = FactMapper().facts(_envelope("listing.started.v1", data, time=T0))[0]
    assert same_day.started_at == T0
    later = FactMapper().facts(_envelope("listing.started.v1", data, time=T0 + timedelta(days=3)))[0]
    assert later.started_at == datetime(2026, 3, 2, tzinfo=STHLM)


def test_a_fictive_list_assignment_is_not_a_real_fast_lakarkontakt():
    data = {"assignment_id": str(uuid.uuid4()), "patient_key": KEY, "care_unit_id": UNIT_A, "list_id": "VC Dr X",
            "list_kind": "fictive", "practitioner_id": None, "coordinating": True, "assigned_on": "2026-03-02"}
    (fact,) = FactMapper().facts(_envelope("fast_lakarkontakt.assigned.v1", data))
    assert isinstance(fact, FlkAssignedFact) and fact.is_fictive and fact.practitioner_id == "list:VC Dr X"


@pytest.mark.parametrize("wire, reason", [("doctor_left", FlkEndReason.DOCTOR_LEFT), ("relisted", FlkEndReason.RELISTED),
                                          ("ended_by_unit", FlkEndReason.OTHER)])
def test_fast_lakarkontakt_end_reasons_map_to_the_domain(wire, reason):
    data = {"assignment_id": str(uuid.uuid4()), "patient_key": KEY, "care_unit_id": UNIT_A, "list_id": "l1",
            "list_kind": "doctor", "practitioner_id": "SE2321000016-L001", "ended_on": "2026-03-02", "reason": wire}
    (fact,) = FactMapper().facts(_envelope("fast_lakarkontakt.ended.v1", data))
    assert fact.reason is reason


def test_death_in_the_population_register_is_a_person_status_fact():
    data = {"patient_key": KEY, "status": "deceased", "updated_at": "2026-03-02T08:00:00Z"}
    (fact,) = FactMapper().facts(_envelope("person.updated.v1", data))
    assert isinstance(fact, PersonStatusFact) and fact.deceased and not fact.emigrated


def test_a_decline_says_whether_it_suppresses_alerts_as_the_listing_profile_decided_absent_meaning_yes():
    data = {"patient_key": KEY, "care_unit_id": UNIT_A, "declined_on": "2026-03-02"}
    (default,) = FactMapper().facts(_envelope("fast_lakarkontakt.declined.v1", data))
    (not_suppressing,) = FactMapper().facts(_envelope("fast_lakarkontakt.declined.v1",
                                                      {**data, "suppresses_alerts": False}))
    assert (default.suppresses_alerts, not_suppressing.suppresses_alerts) == (True, False)


def test_events_that_do_not_concern_care_gaps_map_to_no_facts():
    data = {"patient_key": KEY, "care_unit_id": UNIT_A, "declined_on": "2026-03-02"}
    assert FactMapper().facts(_envelope("fast_lakarkontakt.declined.v1", data))
    fake = _envelope("fast_lakarkontakt.declined.v1", data)
    assert FactMapper().facts(type(fake)(fake.id, "visit.recorded.v1", fake.source, fake.time,
                                         fake.key, {})) == []


# ---- domain events -> published events -------------------------------------------------------------


def test_gap_events_satisfy_their_contracts_and_have_deterministic_ids():
    state, _ = apply(initial_state(KEY), ListingStartedFact(KEY, "L1", UNIT_A, T0), T0, CarePolicy(grace_days=0))
    state, (opened,) = apply(state, RiskAssessedFact(KEY, 5, T0), T0, CarePolicy(grace_days=0))
    event = gap_event(opened)
    assert event.event_id == derived_id("care_gap.opened.v1", opened.gap_id) == gap_event(opened).event_id
    assert event.data["cause"] == GapCause.NEVER_ASSIGNED.value and event.data["opened_at"].endswith("Z")
    state, (resolved,) = apply(state, ListingEndedFact(KEY, "L1", UNIT_A, T0 + timedelta(days=1),
                                                       ListingEndReason.DECEASED), T0 + timedelta(days=2))
    assert gap_event(resolved).data["resolution"] == "deceased"


def test_alert_delivered_uses_the_contracts_kind_names():
    event = alert_delivered_event(str(uuid.uuid4()), UNIT_A, "teams", "new_gaps", 3, 2, T0)
    contracts().validate(event.event_type, event.data)
    assert event.data["kind"] == "immediate"


# ---- secrets -----------------------------------------------------------------------------------------


def test_env_secret_store_reads_flk_notifier_secret_ref():
    assert env_var_for("teams-vc.a1") == "FLK_NOTIFIER_SECRET_TEAMS_VC_A1"
    store = EnvSecretStore({"FLK_NOTIFIER_SECRET_TEAMS_VC_A1": " https://hook.example/x \n"})
    assert store.get("teams-vc.a1") == "https://hook.example/x"
    assert store.get("other") is None


def test_dir_secret_store_reads_a_file_per_secret_and_refuses_paths(tmp_path: Path):
    (tmp_path / "teams-vca1").write_text("https://hook.example/y\n")
    store = ChainedSecretStore(MemorySecretStore(), DirSecretStore(tmp_path))
    assert store.get("teams-vca1") == "https://hook.example/y"
    for bad in ("../etc/passwd", "https://hook.example/z", ""):
        with pytest.raises(ValueError):
            store.get(bad)


# ---- routing, settings, messages -------------------------------------------------------------------


def test_routing_refuses_a_webhook_url_where_a_secret_name_belongs():
    with pytest.raises(ValueError):
        build_routing(UNIT_A, "VC", teams_webhook_secret_ref="https://prod.example/workflows/abc")


@pytest.mark.parametrize("kwargs", [{"email_to": ["not-an-address"]}, {"mode": "hourly"},
                                    {"quiet_hours": "22-07"}, {"unit_id": "VC1"}])
def test_routing_is_validated(kwargs):
    unit_id = kwargs.pop("unit_id", UNIT_A)
    with pytest.raises(ValueError):
        build_routing(unit_id, "VC", **kwargs)


def test_settings_come_from_flk_notifier_environment_variables(monkeypatch):
    monkeypatch.setenv("FLK_NOTIFIER_GRACE_DAYS", "7")
    monkeypatch.setenv("FLK_NOTIFIER_WORKLIST_BASE_URL", "https://vard.example.se/arbetslista/")
    s = NotifierSettings()
    assert s.care_policy.grace_days == 7
    assert s.worklist_url(UNIT_A) == f"https://vard.example.se/arbetslista/units/{UNIT_A}/worklist"
    monkeypatch.setenv("FLK_NOTIFIER_WORKLIST_BASE_URL", "ftp://x")
    with pytest.raises(ValueError):
        NotifierSettings()


def test_email_has_text_and_html_parts_and_no_auto_replies():
    msg = build_message(RenderedEmail(("a@example.se",), "Ämne", "text", "<p>html</p>"), "from@example.se", "<id@x>")
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Message-ID"] == "<id@x>"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


ALERT_PATH = ("adapters/alert_store.py", "service_layer/alerting.py", "service_layer/delivery.py",
              "adapters/senders.py", "domain/alerts.py", "domain/messages.py")


@pytest.mark.parametrize("module", ALERT_PATH)
def test_the_alert_path_never_reads_a_patient_key(module):
    import services.notifier

    source = (Path(services.notifier.__file__).parent / module).read_text(encoding="utf-8")
    assert "patient_key" not in source
    assert "notifier.care_gap " not in source and "FROM notifier.care_gap\n" not in source


def test_a_sabo_period_that_ends_before_it_starts_is_refused_at_once_with_a_reason_naming_no_value():
    from flk.events.consumer import PermanentFailure

    data = {"residence_id": str(uuid.uuid4()), "patient_key": KEY, "sabo_from": "2026-03-10",
            "sabo_to": "2026-03-01", "municipality_code": "1980", "recorded_at": "2026-03-10T08:00:00Z"}
    with pytest.raises(PermanentFailure) as refused:
        FactMapper().facts(_envelope("residence.recorded.v1", data))
    reason = str(refused.value)
    assert reason == "residence.recorded.v1: sabo_to is before sabo_from"
    assert KEY not in reason and "2026" not in reason
