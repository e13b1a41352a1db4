"""Specification of alert texts: Swedish, counts only, no patient identifiers (docs/domain.md §6, P2)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.domain.alerts import (
    Alert,
    AlertKind,
    AlertMode,
    OpenGapRow,
    UnitRouting,
    plan_alerts,
    summarize,
)
from services.notifier.domain.care_gaps import (
    CareGapOpened,
    CarePolicy,
    FlkAssignedFact,
    FlkEndedFact,
    FlkEndReason,
    GapCause,
    ListingStartedFact,
    ResidenceFact,
    RiskAssessedFact,
    Tick,
    apply,
    initial_state,
)
from services.notifier.domain.messages import (
    ADAPTIVE_CARD_CONTENT_TYPE,
    PatientIdentifierLeak,
    ensure_no_personal_identity_number,
    render_email,
    render_teams_card,
)

pytestmark = pytest.mark.unit

STHLM = ZoneInfo("Europe/Stockholm")
UNIT = "SE2321000016-15CQ"  # HSA-id style (digits that are not a personnummer)
UNIT_NAME = "Hälsocentralen Kvarnholmen"
WORKLIST = f"https://flk.regionkalmar.example/enheter/{UNIT}/vardluckor"
T0 = datetime(2025, 3, 3, 8, tzinfo=STHLM)

#: 10 or 12 digits, optional - or + before the last four (any digits; stricter than the guard).
PNR_LIKE = re.compile(r"(?<!\d)(\d{2})?\d{6}[-+]?\d{4}(?!\d)")


def luhn_digit(nine: str) -> str:
    total = 0
    for i, ch in enumerate(nine):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def personnummer(century: str, yymmdd: str, nnn: str, sep: str = "") -> str:
    return f"{century}{yymmdd}{sep}{nnn}{luhn_digit(yymmdd + nnn)}"


PATIENT_KEYS = [
    personnummer("19", "121212", "121"),  # 191212121212, Skatteverket's test number
    personnummer("19", "450311", "238"),
    personnummer("", "381105", "432", "-"),  # 10-digit with hyphen
    personnummer("", "190707", "123", "+"),  # 10-digit, 100 years or older
    personnummer("20", "170161", "239"),  # samordningsnummer (day + 60)
]
NAMES = ["Tolvan Tolvansson", "Anna Andersson", "Åsa Öberg"]


def opened_gaps() -> list[CareGapOpened]:
    """Real gaps from the gap rules, for patients whose keys are personnummer."""
    policy = CarePolicy()
    events: list[CareGapOpened] = []
    for i, key in enumerate(PATIENT_KEYS):
        state = initial_state(key)
        facts = [
            RiskAssessedFact(key, 5 - i % 2, T0 - timedelta(days=1)),
            ListingStartedFact(key, f"L{i}", UNIT, T0 - timedelta(days=i)),
        ]
        if i == 1:
            facts.append(FlkAssignedFact(key, "LOCUM", UNIT, "locum-dr-x", T0, is_fictive=True))
        if i == 2:
            facts += [
                FlkAssignedFact(key, "A", UNIT, "dr-a", T0),
                FlkEndedFact(key, "A", UNIT, T0 + timedelta(days=15), FlkEndReason.DOCTOR_LEFT),
            ]
        if i == 3:
            facts.append(ResidenceFact(key, T0 - timedelta(days=300)))
        opened: list[CareGapOpened] = []
        for fact in facts + [Tick(T0 + timedelta(days=20))]:
            now = getattr(fact, "now", None) or max(T0 + timedelta(days=1), getattr(fact, "ended_at", T0))
            state, new = apply(state, fact, now, policy)
            opened += [e for e in new if isinstance(e, CareGapOpened)]
        assert state.open_gap is not None
        events += [e for e in opened if e.gap_id == state.open_gap.gap_id]
    assert len(events) == len(PATIENT_KEYS)
    assert {e.cause for e in events} == {GapCause.NEVER_ASSIGNED, GapCause.LOCUM_LIST, GapCause.DOCTOR_LEFT}
    return events


def all_alerts(rows, now) -> list[Alert]:
    channels = (UNIT, UNIT_NAME, ("vc@example.se",), "teams-kvarnholmen")
    digest = UnitRouting(*channels, escalation_after_days=3, escalation_email="chef@example.se")
    immediate = UnitRouting(*channels, mode=AlertMode.IMMEDIATE, quiet_hours=None)
    alerts = plan_alerts(digest, rows, set(), now) + plan_alerts(immediate, rows, set(), now)
    assert {a.kind for a in alerts} == set(AlertKind)
    return alerts


def test_no_patient_identifier_in_email_or_teams_card():
    events = opened_gaps()
    rows = [OpenGapRow.from_opened(e) for e in events]
    now = datetime(2025, 3, 24, 9, tzinfo=STHLM)
    summary = summarize(UNIT, rows, now)
    forbidden = set(PATIENT_KEYS) | {k.replace("-", "").replace("+", "") for k in PATIENT_KEYS}
    forbidden |= {k[-10:] for k in forbidden} | set(NAMES) | {str(e.gap_id) for e in events}
    for alert in all_alerts(rows, now):
        email = render_email(alert, summary, WORKLIST)
        card = json.dumps(render_teams_card(alert, summary, WORKLIST), ensure_ascii=False)
        for text in (email.subject, email.text_body, email.html_body, card):
            for secret in forbidden:
                assert secret not in text
            # Crude 10/12-digit check, outside the unit's worklist URL (its HSA-id has 10 digits).
            assert PNR_LIKE.search(text.replace(WORKLIST, "")) is None, text
            assert "patient_key" not in text


def test_email_is_swedish_with_unit_name_counts_by_cause_oldest_age_and_login_link():
    now = T0 + timedelta(days=30)
    rows = [
        OpenGapRow(uuid.uuid4(), UNIT, GapCause.DOCTOR_LEFT, 5, False, now - timedelta(days=17)),
        OpenGapRow(uuid.uuid4(), UNIT, GapCause.DOCTOR_LEFT, 4, True, now - timedelta(days=3)),
        OpenGapRow(uuid.uuid4(), UNIT, GapCause.LOCUM_LIST, None, True, now - timedelta(days=1)),
    ]
    summary = summarize(UNIT, rows, now)
    routing = UnitRouting(UNIT, UNIT_NAME, ("vc@example.se",), escalation_after_days=None)
    [alert] = plan_alerts(routing, rows, set(), now)
    email = render_email(alert, summary, WORKLIST)
    assert email.to == ("vc@example.se",)
    assert UNIT_NAME in email.subject and "3 patienter" in email.subject
    assert "Läkaren har slutat: 2" in email.text_body
    assert "Endast på fiktiv lista (hyr-/stafettläkare): 1" in email.text_body
    assert "RUB 5 (mycket hög sjuklighet): 1" in email.text_body
    assert "Boende på SÄBO: 2" in email.text_body
    assert "öppen i 17 dagar" in email.text_body
    assert f"Öppna arbetslistan (kräver inloggning): {WORKLIST}" in email.text_body
    assert f'href="{WORKLIST}"' in email.html_body and "kräver inloggning" in email.html_body


def _alert(kind: AlertKind, count: int, unit_name: str = UNIT_NAME) -> Alert:
    return Alert(
        alert_id=uuid.uuid4(), kind=kind, unit_id=UNIT, unit_name=unit_name, gap_count=count,
        email_to=("vc@example.se",), teams_webhook_secret_ref="ref", dedup_ids=frozenset(),
        digest_date=T0.date() if kind is AlertKind.DAILY_DIGEST else None,
        escalation_after_days=14 if kind is AlertKind.ESCALATION else None,
    )


def _summary(n: int = 1):
    rows = [
        OpenGapRow(uuid.uuid4(), UNIT, GapCause.NEVER_ASSIGNED, 5, False, T0 - timedelta(days=1))
        for _ in range(n)
    ]
    return summarize(UNIT, rows, T0)


@pytest.mark.parametrize(
    ("kind", "count", "expected"),
    [
        (AlertKind.NEW_GAPS, 1, "Ny vårdlucka: 1 patient med stort vårdbehov saknar fast läkarkontakt"),
        (AlertKind.NEW_GAPS, 2, "Nya vårdluckor: 2 patienter med stort vårdbehov saknar"),
        (AlertKind.ESCALATION, 1, "Eskalering: 1 vårdlucka öppen i minst 14 dagar"),
        (AlertKind.ESCALATION, 2, "Eskalering: 2 vårdluckor öppna i minst 14 dagar"),
        (AlertKind.DAILY_DIGEST, 1, "Daglig sammanställning 2025-03-03: 1 patient saknar fast läkarkontakt"),
    ],
)
def test_subject_per_alert_kind_in_swedish_singular_and_plural(kind, count, expected):
    assert expected in render_email(_alert(kind, count), _summary(), WORKLIST).subject


def test_teams_card_has_the_workflows_webhook_shape():
    card = render_teams_card(_alert(AlertKind.DAILY_DIGEST, 1), _summary(), WORKLIST)
    assert card["type"] == "message" and list(card) == ["type", "attachments"]
    [attachment] = card["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"
    content = attachment["content"]
    assert content["type"] == "AdaptiveCard"
    assert content["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert content["version"] == "1.4"
    assert content["body"] and all(block["type"] in {"TextBlock", "FactSet"} for block in content["body"])
    assert content["actions"] == [{"type": "Action.OpenUrl", "title": "Öppna arbetslistan", "url": WORKLIST}]
    json.dumps(card)  # serialisable


def test_email_html_escapes_the_unit_name():
    email = render_email(_alert(AlertKind.NEW_GAPS, 1, unit_name="VC <Syd> & Co"), _summary(), WORKLIST)
    assert "VC &lt;Syd&gt; &amp; Co" in email.html_body and "<Syd>" not in email.html_body


def test_rendering_refuses_a_message_containing_a_personnummer():
    with pytest.raises(PatientIdentifierLeak):
        render_email(_alert(AlertKind.NEW_GAPS, 1, unit_name="VC 19121212-1212"), _summary(), WORKLIST)
    with pytest.raises(PatientIdentifierLeak):
        render_teams_card(_alert(AlertKind.NEW_GAPS, 1), _summary(), f"{WORKLIST}?p=191212121212")


def test_worklist_url_must_be_http():
    with pytest.raises(ValueError):
        render_email(_alert(AlertKind.NEW_GAPS, 1), _summary(), "javascript:alert(1)")


@pytest.mark.parametrize("text", ["SE2321000016-15CQ", "Totalt: 1234567890", "2025-03-03", "tel 0480-123 45"])
def test_identifier_guard_lets_hsa_ids_counts_and_dates_through(text):
    ensure_no_personal_identity_number(text)


@settings(max_examples=200, deadline=None)
@given(
    st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2025, 12, 31).date()),
    st.integers(0, 999),
    st.booleans(),
    st.sampled_from(["", "-", "+"]),
    st.booleans(),
)
def test_identifier_guard_catches_any_valid_personnummer_or_samordningsnummer(day, nnn, coordination, sep, twelve):
    dd = day.day + (60 if coordination else 0)
    yymmdd = f"{day:%y%m}{dd:02d}"
    nine = yymmdd + f"{nnn:03d}"
    number = (f"{day:%Y}"[:2] if twelve else "") + yymmdd + sep + nine[6:] + luhn_digit(nine)
    with pytest.raises(PatientIdentifierLeak):
        ensure_no_personal_identity_number(f"Patient {number} saknar FLK")
