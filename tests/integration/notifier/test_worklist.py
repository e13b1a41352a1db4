"""The unit worklist over HTTP: real PostgreSQL (gaps, vault, audit log), the real broker for the
assignment round trip, and a local stand-in for the listing service's REST API."""
from __future__ import annotations

from html import unescape
import logging
import re
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import httpx
import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr
from stdnum import luhn

from flk.security.pseudonym import PersonId
from flk.security.tokens import Role, issue_token
from flk.security.vault import IdentityVault
from services.notifier.entrypoints.api import create_app
from services.notifier.entrypoints.worklist import SESSION_COOKIE
from tests.support.builders import DOCTOR_1, UNIT_A, UNIT_B, a_patient_key
from tests.support.listing_standin import ListingStandIn, a_doctor_list, a_fictive_list

from notifier_harness import free_port, listing_started, risk_assessed, wait_until

DOCTOR_2 = "SE2321000016-L002"
DOCTOR_FULL = "SE2321000016-L003"
STAFF = "SE2321000016-U001"


def a_personnummer(serial: int) -> str:
    """A valid 12-digit personnummer (Luhn over YYMMDDNNN)."""
    body = f"500101{serial:03d}"
    return f"19{body}{luhn.calc_check_digit(body)}"


def shown(personnummer: str) -> str:
    return f"{personnummer[:8]}-{personnummer[8:]}"


@pytest.fixture
async def listing(notifier, producer):
    standin = ListingStandIn(notifier.settings.platform, producer, free_port())
    standin.lists[UNIT_A] = [
        a_doctor_list(DOCTOR_1, "Dr Anna Berg", size=900),
        a_doctor_list(DOCTOR_2, "Dr Karl Ek", size=1000),
        a_doctor_list(DOCTOR_FULL, "Dr Full Lista", size=1100),
        a_fictive_list(UNIT_A),
    ]
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def app(notifier, listing):
    settings = notifier.settings.model_copy(update={"listing_api_base_url": listing.base_url,
                                                    "worklist_assign_wait_s": 10.0})
    application = create_app(settings, run_workers=False, probe=notifier.probe)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def browser(app):
    """An HTTP client that keeps cookies, like a browser without JavaScript."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier.test") as client:
        yield client


def token(notifier, role: Role = Role.CLINICIAN, units: tuple[str, ...] = (UNIT_A,)) -> str:
    return issue_token(notifier.settings.platform, STAFF, role, list(units))


def bearer(notifier, role: Role = Role.CLINICIAN, units: tuple[str, ...] = (UNIT_A,)) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(notifier, role, units)}"}


async def a_gap(notifier, serial: int, *, unit_id: str = UNIT_A, cause: str = "never_assigned", rub: int | None = 5,
                sabo: bool = False, days_open: int = 3, protected: bool = False, identity: bool = True,
                kind: str = "fast_lakarkontakt", name: str | None = None) -> str:
    key = a_patient_key(serial)
    await notifier.pool.execute(
        "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at, kind) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        uuid.uuid4(), key, unit_id, cause, rub, sabo, datetime.now(timezone.utc) - timedelta(days=days_open, hours=1),
        kind)
    if identity:
        async with notifier.pool.acquire() as conn:
            await IdentityVault(notifier.settings.platform.identity_vault_key.get_secret_value()).store(
                conn, key, PersonId("personnummer", a_personnummer(serial)), protected, name)
    return key


def gap_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="gap">(.*?)</tr>', html, re.S)


async def login(browser: httpx.AsyncClient, jwt: str) -> httpx.Response:
    form = await browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    return await browser.post("/login", data={"token": jwt, "csrf_token": csrf, "next": f"/units/{UNIT_A}/worklist"})


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def assign_form(html: str, row: int = 0) -> dict[str, str]:
    form = re.findall(r'<form method="post" action="/units/[^"]+/worklist/assign">(.*?)</form>', html, re.S)[row]
    fields = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)}
    fields["list_id"] = re.search(r'<option value="([^"]+)"', form).group(1)
    return fields


# ---- what staff see -------------------------------------------------------------------------------


async def test_unit_staff_see_their_patients_by_personnummer_with_cause_rub_sabo_and_days_open(notifier, browser):
    old = await a_gap(notifier, 1, cause="doctor_left", rub=4, sabo=True, days_open=20)
    new = await a_gap(notifier, 2, cause="locum_list", rub=5, days_open=2)
    await a_gap(notifier, 3, unit_id=UNIT_B)

    page = await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier))

    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    rows = gap_rows(page.text)
    assert len(rows) == 2, "only this unit's open gaps"
    assert shown(a_personnummer(1)) in rows[0], "the longest-waiting first"
    assert "Läkaren har slutat" in rows[0] and "RUB 4" in rows[0] and "<td>Ja</td>" in rows[0]
    assert re.search(r"<td>20 <span", rows[0])
    assert shown(a_personnummer(2)) in rows[1] and "Endast på fiktiv lista" in rows[1] and "<td>Nej</td>" in rows[1]
    assert old not in page.text and new not in page.text, "re-identified staff see no pseudonymous keys"
    assert shown(a_personnummer(3)) not in page.text, "another unit's patient is not shown"


async def test_doctors_with_free_capacity_are_listed_from_the_listing_api_with_the_users_token(notifier, browser,
                                                                                             listing):
    await a_gap(notifier, 1)
    jwt = token(notifier)

    page = await browser.get(f"/units/{UNIT_A}/worklist", headers={"Authorization": f"Bearer {jwt}"})

    doctors = re.search(r'<table id="doctors">(.*?)</table>', page.text, re.S).group(1)
    assert "Dr Anna Berg" in doctors and "<td>200</td>" in doctors
    assert "Dr Karl Ek" in doctors and "<td>100</td>" in doctors
    assert "Dr Full Lista" not in page.text, "a full list is not offered"
    assert "Dr X" not in page.text, "a fictive list is not a fast läkarkontakt"
    assert listing.authorizations == [f"Bearer {jwt}"]


async def test_a_protected_identity_shows_only_the_pseudonymous_key(notifier, browser):
    key = await a_gap(notifier, 1, protected=True)

    page = await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier))

    (row,) = gap_rows(page.text)
    assert key in row and "Skyddad identitet" in row
    assert a_personnummer(1)[2:8] not in page.text


async def test_a_region_listing_administrator_sees_pseudonymous_keys_not_personnummer(notifier, browser):
    key = await a_gap(notifier, 1)

    page = await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier, Role.LISTING_ADMIN, ()))

    assert page.status_code == 200
    assert key in page.text and a_personnummer(1)[2:8] not in page.text


@pytest.mark.parametrize("role, units", [(Role.CLINICIAN, (UNIT_B,)), (Role.VERKSAMHETSCHEF, (UNIT_B,)),
                                         (Role.ANALYST, (UNIT_A,))])
async def test_another_units_staff_and_analysts_get_404_and_the_denial_is_audited(notifier, browser, role, units):
    await a_gap(notifier, 1)

    page = await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier, role, units))

    assert page.status_code == 404
    assert a_personnummer(1)[2:8] not in page.text and "pk1_" not in page.text
    audit = await notifier.fetch("SELECT action, unit_id, patient_key, outcome FROM platform.audit_log")
    assert [tuple(r) for r in audit] == [("notifier.worklist.read", UNIT_A, None, "denied")]


async def test_every_view_is_audit_logged_with_each_patient_shown(notifier, browser):
    keys = {await a_gap(notifier, 1), await a_gap(notifier, 2)}

    await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier))
    await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier))

    audit = await notifier.fetch(
        "SELECT action, actor, actor_role, unit_id, patient_key, outcome, purpose, request_id FROM platform.audit_log "
        "ORDER BY id")
    assert len(audit) == 6
    views = [r for r in audit if r["action"] == "notifier.worklist.read"]
    patients = [r for r in audit if r["action"] == "notifier.worklist.patient.view"]
    assert len(views) == 2 and {r["patient_key"] for r in patients} == keys and len(patients) == 4
    assert {(r["actor"], r["actor_role"], r["unit_id"], r["outcome"], r["purpose"]) for r in audit} == {
        (STAFF, "clinician", UNIT_A, "allowed", "vard")}
    assert len({r["request_id"] for r in audit}) == 2, "one request id per view"


# ---- names, summary, filters, sort order and pages -----------------------------------------------------


async def test_staff_see_patients_by_name_and_personnummer_and_the_unit_and_doctors_by_name(notifier, browser,
                                                                                          listing):
    listing.unit_names[UNIT_A] = "Vårdcentralen Norra"
    await a_gap(notifier, 1, name="Karin Berg", days_open=5)
    protected = await a_gap(notifier, 2, name="Hemlig Person", protected=True)

    page = await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier))

    first, second = gap_rows(page.text)
    assert '<strong class="name">Karin Berg</strong>' in first and shown(a_personnummer(1)) in first
    assert protected in second and "Hemlig" not in page.text, "a protected identity: key only, never the name"
    assert re.search(r'<strong class="unit-name">Vårdcentralen Norra</strong> <span class="hsa">HSA-id '
                     + re.escape(UNIT_A), page.text)
    doctors = re.search(r'<table id="doctors">(.*?)</table>', page.text, re.S).group(1)
    assert '<td class="doctor-name">Dr Anna Berg</td><td class="hsa">' + DOCTOR_1 in doctors
    assert f"Dr Anna Berg · {DOCTOR_1} (200 lediga)" in page.text


async def test_a_unit_the_listing_service_gives_no_name_is_named_from_the_notifiers_routing(notifier, browser,
                                                                                           listing):
    await notifier.pool.execute("INSERT INTO notifier.unit_routing (care_unit_id, unit_name) VALUES ($1, $2)",
                                UNIT_A, "Vårdcentralen Routing")
    await a_gap(notifier, 1)

    page = await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier))
    assert '<strong class="unit-name">Vårdcentralen Routing</strong>' in page.text
    units = await browser.get("/", headers=bearer(notifier, units=(UNIT_A, UNIT_B)))
    assert "Arbetslista Vårdcentralen Routing</a>" in units.text and f"Arbetslista {UNIT_B}</a>" in units.text


async def test_filters_sort_order_and_pages_are_query_parameters_that_every_link_and_form_keeps(notifier, browser):
    for serial in range(1, 31):  # 30 gaps: even serials RUB 4 on SÄBO, odd RUB 5 at home; open 1..30 days
        await a_gap(notifier, serial, rub=4 if serial % 2 == 0 else 5, sabo=serial % 2 == 0, days_open=serial,
                    cause="doctor_left" if serial % 3 == 0 else "never_assigned")

    page = await browser.get(f"/units/{UNIT_A}/worklist?sabo=ja&minst_dagar=5&ordning=stigande&per_sida=10&sida=2",
                             headers=bearer(notifier))

    assert page.status_code == 200
    summary = re.search(r'<section id="summary".*?</section>', page.text, re.S).group(0)
    assert re.search(r'id="count-total">30<', summary) and re.search(r'id="count-sabo">15<', summary)
    assert re.search(r'id="count-rub">30<', summary) and re.search(r'id="count-long">1<', summary)
    assert "Läkaren har slutat <strong>10</strong>" in summary
    # SÄBO residents open ≥ 5 days: serials 6, 8, …, 30 (13), days ascending; page 2 of 10 a page
    rows = gap_rows(page.text)
    assert [re.search(r"19500101-(\d{3})", r).group(1) for r in rows] == ["026", "028", "030"]
    assert "(11–13 av 13, filtrerat från 30)" in page.text
    previous = re.search(r'id="previous-page" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert dict(parse_qsl(previous[1:])) == {"sabo": "ja", "minst_dagar": "5", "ordning": "stigande", "per_sida": "10"}
    header = re.search(r'data-sort="rub" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert dict(parse_qsl(header[1:])) == {"sabo": "ja", "minst_dagar": "5", "sortera": "rub", "per_sida": "10"}
    assert 'aria-sort="ascending"' in page.text
    form = re.search(r'<form method="get" id="filters".*?</form>', page.text, re.S).group(0)
    assert '<option value="ja" selected>' in form and 'name="minst_dagar" min="0" max="3650" size="4" value="5"' in form

    back = await browser.get(f"/units/{UNIT_A}/worklist{previous}", headers=bearer(notifier))
    assert len(gap_rows(back.text)) == 10 and "(1–10 av 13, filtrerat från 30)" in back.text


async def test_only_the_patients_on_the_shown_page_are_re_identified_and_audit_logged(notifier, browser):
    keys = [await a_gap(notifier, serial, days_open=serial) for serial in range(1, 13)]

    await browser.get(f"/units/{UNIT_A}/worklist?per_sida=10&sida=2", headers=bearer(notifier))

    patients = await notifier.fetch("SELECT patient_key FROM platform.audit_log "
                                    "WHERE action = 'notifier.worklist.patient.view'")
    assert sorted(r["patient_key"] for r in patients) == sorted(keys[:2]), "page 2: the two that waited least"


async def test_a_value_the_worklist_cannot_take_is_reported_and_the_page_still_shows(notifier, browser):
    await a_gap(notifier, 1)
    page = await browser.get(f"/units/{UNIT_A}/worklist?rub=9&sortera=namn", headers=bearer(notifier))
    assert page.status_code == 200 and len(gap_rows(page.text)) == 1
    assert "Okänt värde för RUB – det ignorerades." in page.text
    assert "Okänt värde för sortering – det ignorerades." in page.text


# ---- login --------------------------------------------------------------------------------------------


async def test_without_a_token_the_worklist_redirects_to_the_login_form(browser):
    page = await browser.get(f"/units/{UNIT_A}/worklist")

    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=%2Funits%2F")


async def test_the_worklists_view_survives_the_login_form(notifier, browser):
    asked = f"/units/{UNIT_A}/worklist?sabo=ja&per_sida=10"
    redirect = await browser.get(asked)
    next_path = dict(parse_qsl(redirect.headers["location"].split("?", 1)[1]))["next"]
    assert next_path == asked
    form = await browser.get(redirect.headers["location"])
    answer = await browser.post("/login", data={"token": token(notifier), "csrf_token": csrf_of(form.text),
                                                "next": next_path})
    assert answer.status_code == 303 and answer.headers["location"] == asked


async def test_login_with_a_pasted_token_sets_an_httponly_samesite_strict_cookie_that_opens_the_worklist(
        notifier, browser):
    await a_gap(notifier, 1)

    answer = await login(browser, token(notifier))

    assert answer.status_code == 303 and answer.headers["location"] == f"/units/{UNIT_A}/worklist"
    session = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session
    page = await browser.get(answer.headers["location"])
    assert page.status_code == 200 and shown(a_personnummer(1)) in page.text


async def test_login_refuses_an_invalid_token_and_a_form_without_its_csrf_token(notifier, browser):
    forged = issue_token(notifier.settings.platform.model_copy(update={"jwt_verify_key": SecretStr("x" * 40)}),
                         STAFF, Role.CLINICIAN, [UNIT_A])

    refused = await login(browser, forged)
    assert refused.status_code == 401 and "Token kunde inte verifieras" in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")

    cross_site = await browser.post("/login", data={"token": token(notifier), "csrf_token": "guess"})
    assert cross_site.status_code == 400 and SESSION_COOKIE not in browser.cookies


async def test_an_expired_session_goes_back_to_the_login_form_with_a_fixed_message(notifier, browser):
    expired = issue_token(notifier.settings.platform, STAFF, Role.CLINICIAN, [UNIT_A], ttl=timedelta(minutes=-5))
    browser.cookies.set(SESSION_COOKIE, expired)

    answer = await browser.get(f"/units/{UNIT_A}/worklist")

    assert answer.status_code == 303 and answer.headers["location"].endswith("&fel=utgangen")
    assert f'{SESSION_COOKIE}=""' in answer.headers["set-cookie"], "the stale cookie is removed"
    form = await browser.get(answer.headers["location"])
    assert "Inloggningen gäller inte längre" in form.text
    crafted = await browser.get("/login?fel=Ring+0771-123456+och+uppge+ditt+personnummer")
    assert "Ring 0771" not in crafted.text, "no text from the URL is shown"


async def test_login_never_redirects_to_another_site(notifier, browser):
    form = await browser.get("/login")
    answer = await browser.post("/login", data={"token": token(notifier), "csrf_token": csrf_of(form.text),
                                                "next": "//evil.example/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"


# ---- assigning an FLK -------------------------------------------------------------------------------------


@pytest.fixture
async def detection(notifier):
    """Gap detection consuming the real broker, on the wall clock (assignments are dated today)."""
    notifier.clock.offset = timedelta(0)
    await notifier.start(grace_days=0)
    return notifier


async def a_detected_gap(notifier, serial: int) -> str:
    key = a_patient_key(serial)
    now = datetime.now(timezone.utc)
    async with notifier.pool.acquire() as conn:
        await IdentityVault(notifier.settings.platform.identity_vault_key.get_secret_value()).store(
            conn, key, PersonId("personnummer", a_personnummer(serial)), False)
    await notifier.publish("listing.started.v1", listing_started(key, UNIT_A, now.date()))
    await notifier.publish("risk.assessed.v1", risk_assessed(key, 5, now - timedelta(days=30)))
    await wait_until(lambda: notifier.fetchval(
        "SELECT count(*) = 1 FROM notifier.care_gap WHERE patient_key = $1 AND resolved_at IS NULL", key),
        what="gap opened")
    return key


async def test_assigning_an_flk_sends_the_contract_command_with_the_users_token_and_the_gap_disappears(
        detection, browser, listing):
    key = await a_detected_gap(detection, 1)
    jwt = token(detection)
    await login(browser, jwt)
    page = await browser.get(f"/units/{UNIT_A}/worklist")
    assert shown(a_personnummer(1)) in page.text

    answer = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=assign_form(page.text))

    assert answer.status_code == 303 and answer.headers["location"] == f"/units/{UNIT_A}/worklist?tilldelning=klar"
    (command,) = listing.commands
    assert (command["patient_key"], command["care_unit_id"], command["list_id"], command["practitioner_id"]) == (
        key, UNIT_A, f"list-{DOCTOR_1}", DOCTOR_1)
    assert (command["channel"], command["requested_by"], command["coordinating"]) == ("admin", STAFF, True)
    assert listing.authorizations[-1] == f"Bearer {jwt}", "the user's own token is forwarded"
    assert await detection.fetchval("SELECT resolution FROM notifier.care_gap WHERE patient_key = $1", key) == \
        "fast_lakarkontakt_assigned"
    after = await browser.get(answer.headers["location"])
    assert "Fast läkarkontakt tilldelad" in after.text
    assert gap_rows(after.text) == [] and shown(a_personnummer(1)) not in after.text
    actions = [r["action"] for r in await detection.fetch("SELECT action FROM platform.audit_log ORDER BY id")]
    assert "notifier.worklist.assign" in actions


async def test_after_an_assignment_the_worklist_comes_back_with_the_same_filters_and_order(detection, browser, listing):
    await a_detected_gap(detection, 1)
    await login(browser, token(detection))
    page = await browser.get(f"/units/{UNIT_A}/worklist?rub=4-5&sortera=rub&per_sida=10")

    answer = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=assign_form(page.text))

    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(f"/units/{UNIT_A}/worklist?")
    assert dict(parse_qsl(location.split("?", 1)[1])) == {
        "rub": "4-5", "sortera": "rub", "per_sida": "10", "tilldelning": "klar"}


async def test_the_same_form_posted_again_after_the_gap_closed_sends_no_second_command(detection, browser, listing):
    await a_detected_gap(detection, 1)
    await login(browser, token(detection))
    form = assign_form((await browser.get(f"/units/{UNIT_A}/worklist")).text)

    first = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=form)
    again = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=form)

    assert first.headers["location"].endswith("?tilldelning=klar")
    assert again.status_code == 303 and again.headers["location"].endswith("?tilldelning=stangd")
    assert len(listing.commands) == 1


async def test_a_rejected_assignment_shows_the_listing_services_swedish_message_and_the_gap_stays(
        notifier, browser, listing):
    await a_gap(notifier, 1)
    listing.rejection = {"reason_code": "list_full", "rule_id": "F6", "decided_under": "kalmar-2026",
                         "message_sv": "Läkarens lista är full (1 100 patienter per heltid).",
                         "message_en": "The doctor's list is full."}
    await login(browser, token(notifier))
    page = await browser.get(f"/units/{UNIT_A}/worklist")

    answer = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=assign_form(page.text))

    assert answer.status_code == 409
    assert "Läkarens lista är full (1 100 patienter per heltid)." in answer.text
    assert len(gap_rows(answer.text)) == 1


async def test_a_fast_vardkontakt_gap_shows_what_is_missing_and_offers_no_flk_assignment(notifier, browser, listing):
    await a_gap(notifier, 1, days_open=5)  # an FLK gap: assignable
    await a_gap(notifier, 1, cause="no_fast_vardkontakt", days_open=2, kind="fast_vardkontakt")
    await login(browser, token(notifier))
    page = await browser.get(f"/units/{UNIT_A}/worklist")

    flk_row, fvk_row = gap_rows(page.text)
    assert "Saknar fast läkarkontakt" in flk_row and "<form" in flk_row
    assert "Saknar fast vårdkontakt" in fvk_row and "Har ingen fast vårdkontakt" in fvk_row
    assert "<form" not in fvk_row and "utses av verksamhetschefen" in fvk_row

    # a forged assignment for the fast-vårdkontakt gap is refused before the listing service is asked
    form = assign_form(page.text)
    fvk_gap_id = await notifier.fetchval("SELECT gap_id::text FROM notifier.care_gap WHERE kind = 'fast_vardkontakt'")
    answer = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=form | {"gap_id": fvk_gap_id})
    assert answer.status_code == 409 and "gäller fast vårdkontakt" in answer.text
    assert listing.commands == []


async def test_an_assignment_without_the_csrf_token_is_refused_and_nothing_reaches_the_listing_service(
        notifier, browser, listing):
    await a_gap(notifier, 1)
    await login(browser, token(notifier))
    form = assign_form((await browser.get(f"/units/{UNIT_A}/worklist")).text)

    forged = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=form | {"csrf_token": "from-another-site"})

    assert forged.status_code == 403
    assert listing.commands == []


async def test_another_units_staff_cannot_assign_and_get_404(notifier, browser, listing):
    await a_gap(notifier, 1)
    page = await browser.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier))
    form = assign_form(page.text)

    answer = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=form,
                                headers=bearer(notifier, Role.CLINICIAN, (UNIT_B,)))

    assert answer.status_code == 404 and listing.commands == []


async def test_with_the_listing_service_down_the_gaps_are_still_shown_and_assignment_is_unavailable(
        notifier, listing):
    await a_gap(notifier, 1)
    settings = notifier.settings.model_copy(update={"listing_api_base_url": f"http://127.0.0.1:{free_port()}",
                                                    "listing_timeout_s": 2.0})
    application = create_app(settings, run_workers=False)
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as client:
            page = await client.get(f"/units/{UNIT_A}/worklist", headers=bearer(notifier))

    assert page.status_code == 200
    assert shown(a_personnummer(1)) in page.text
    assert "Listningstjänsten svarar inte just nu" in page.text
    assert "worklist/assign" not in page.text


# ---- privacy of URLs, logs and metrics --------------------------------------------------------------------


async def test_no_patient_identifier_in_urls_logs_or_metric_labels(detection, browser, listing, caplog):
    caplog.set_level(logging.INFO)  # the production level (aiokafka logs record keys at DEBUG)
    key = await a_detected_gap(detection, 1)
    await login(browser, token(detection))
    page = await browser.get(f"/units/{UNIT_A}/worklist")
    answer = await browser.post(f"/units/{UNIT_A}/worklist/assign", data=assign_form(page.text))
    await browser.get(answer.headers["location"])

    personnummer = a_personnummer(1)
    urls = re.findall(r'(?:href|action)="([^"]+)"', page.text) + [answer.headers["location"]]
    urls += [str(r.url) for r in answer.history] + [str(answer.request.url)]
    metrics = generate_latest(detection.probe.registry).decode()
    assert 'flk_notifier_worklist_requests_total{action="notifier.worklist.assign",outcome="accepted"} 1.0' in metrics
    for text in [*urls, caplog.text, metrics]:
        for value in (key, personnummer, personnummer[2:], shown(personnummer)):
            assert value not in text
        assert "pk1_" not in text
