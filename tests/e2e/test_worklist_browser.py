"""The worklist in a real headless browser (Debian's chromium + chromedriver, driven by selenium):
a clinician signs in — with a pasted development token, or at the region's identity provider (a
real Keycloak, authorization code flow with PKCE) — sees a RUB 5 patient without an FLK by name and
personnummer (a Skatteverket test number), the unit and the doctor by name, assigns the doctor from
the page, and sees the gap disappear.

Everything in between is real: the listing service (its API, command handlers, Kafka consumers
and outbox relay) and the notifier (gap detection from listing.events.v1, the worklist) on the
shared broker and a fresh database, each served by uvicorn on a private port.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jwt
import pytest
import uvicorn

from flk.events.envelope import make_record
from flk.events.producer import publish
from flk.security.pseudonym import PersonId
from flk.security.tokens import Role, issue_token
from flk.security.vault import IdentityVault
from flk.settings import PlatformSettings
from tests.support.browser import chromium_binaries, headless_chromium
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

JWT_KEY = "worklist-browser-secret-0123456789abcdef"
STAFF = "SE2321000016-U001"
TODAY = datetime.now(ZoneInfo("Europe/Stockholm")).date()
PERSONNUMMER = "195001182046"  # from Skatteverket's published test personnummer (tools.simulator.identities)
SHOWN = f"{PERSONNUMMER[:8]}-{PERSONNUMMER[8:]}"
PATIENT_NAME = "Astrid Holm"
DOCTOR_NAME = "Karin Lind"
UNIT_NAME = "Vårdcentralen Centrum"


def rfc3339(at: datetime | None = None) -> str:
    return (at or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")


async def until(condition: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    return await wait_until(condition, timeout_s, 0.2, what)


class Served:
    """A FastAPI app served by uvicorn on this event loop."""

    def __init__(self, app: Any, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="on"))
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Served:
        self.task = asyncio.create_task(self.server.serve())
        await until(lambda: self.server.started or self.task.done(), "uvicorn to start")
        if self.task.done():
            self.task.result()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 30)


def with_a_pasted_token(token: str) -> Callable[[Any, dict], None]:
    def sign_in(driver: Any, seen: dict) -> None:
        from selenium.webdriver.common.by import By

        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "login").click()

    return sign_in


def at_the_identity_provider(username: str, password: str) -> Callable[[Any, dict], None]:
    def sign_in(driver: Any, seen: dict) -> None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        driver.find_element(By.ID, "provider-login").click()
        try:
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "kc-login"))
        except TimeoutException:
            raise AssertionError(f"no sign-in form at {driver.current_url}: "
                                 f"{driver.find_element(By.TAG_NAME, 'body').text[:400]}") from None
        seen["provider_url"] = driver.current_url
        driver.find_element(By.ID, "username").send_keys(username)
        driver.find_element(By.ID, "password").send_keys(password)
        driver.find_element(By.ID, "kc-login").click()

    return sign_in


def assign_from_the_worklist(user_data_dir: Path, worklist_url: str, sign_in: Callable[[Any, dict], None],
                             doctor_list_id: str) -> dict:
    """The clinician's journey (blocking; runs in a thread while the services run on the loop)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    seen: dict[str, Any] = {}
    with headless_chromium(user_data_dir) as driver:
        driver.get(worklist_url)
        seen["login_title"] = driver.title
        sign_in(driver, seen)
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table#gaps, #no-gaps"))
        seen["worklist_url"] = driver.current_url
        rows = [r for r in driver.find_elements(By.CSS_SELECTOR, "tr.gap") if SHOWN in r.text]
        seen["row_before"] = rows[0].text if rows else None
        seen["doctors"] = driver.find_element(By.ID, "doctors").text
        seen["unit"] = driver.find_element(By.ID, "unit").text
        seen["summary"] = driver.find_element(By.ID, "summary").text
        seen["options"] = [o.text for o in rows[0].find_elements(By.CSS_SELECTOR, "select[name=list_id] option")]
        Select(rows[0].find_element(By.NAME, "list_id")).select_by_value(doctor_list_id)
        rows[0].find_element(By.CSS_SELECTOR, "button.assign").click()
        WebDriverWait(driver, 30).until(lambda d: "tilldelning=" in d.current_url)
        seen["notice"] = driver.find_element(By.CSS_SELECTOR, "p.notice").text
        for _ in range(50):  # the gap closes when gap detection has read the listing event
            if not [r for r in driver.find_elements(By.CSS_SELECTOR, "tr.gap") if SHOWN in r.text]:
                break
            time.sleep(0.2)
            driver.refresh()
        seen["page_after"] = driver.find_element(By.TAG_NAME, "main").text
        seen["cookies"] = {c["name"]: c for c in driver.get_cookies()}
    return seen


@pytest.mark.parametrize("signed_in", ["with a pasted token", "at the identity provider"])
async def test_a_clinician_assigns_an_flk_from_the_worklist_in_a_browser_and_the_gap_disappears(
        signed_in, migrated_database, kafka_bootstrap, topic_prefix, producer, tmp_path, request):
    chromium_binaries()
    provider = request.getfixturevalue("identity_provider") if signed_in == "at the identity provider" else None
    from services.listing.entrypoints.api import create_app as listing_app
    from services.listing.settings import ListingSettings
    from services.notifier.entrypoints.api import create_app as notifier_app
    from services.notifier.settings import NotifierSettings

    oidc = {"oidc_issuer": provider.issuer(), "oidc_audience": "flk-services"} if provider else {}
    platform = PlatformSettings(database_url=migrated_database, kafka_bootstrap=kafka_bootstrap,
                                topic_prefix=topic_prefix, jwt_verify_key=JWT_KEY, **oidc)
    listing_port, notifier_port = free_port(), free_port()
    if provider:  # the worklist's public client sends the browser back to this test's notifier
        with provider.admin() as admin:
            admin.update_client("flk", "flk-worklist", {
                "redirectUris": [f"http://127.0.0.1:{notifier_port}/login/oidc/callback"]})
    notifier_settings = NotifierSettings(
        platform=platform, grace_days=0, worklist_base_url=f"http://127.0.0.1:{notifier_port}",
        listing_api_base_url=f"http://127.0.0.1:{listing_port}", smtp_port=free_port(), smtp_tls="none",
        tick_interval_s=0.5, relay_interval_s=0.2, plan_interval_s=5, delivery_poll_s=0.5, metrics_refresh_s=5,
        worklist_assign_wait_s=10, worklist_oidc_client_id="flk-worklist" if provider else None)
    sign_in = at_the_identity_provider("clinician-a", "clinician-a") if provider \
        else with_a_pasted_token(issue_token(platform, STAFF, Role.CLINICIAN, [UNIT_A]))
    admin = {"Authorization": f"Bearer {issue_token(platform, 'listing-admin', Role.LISTING_ADMIN, [])}"}
    patient = a_patient_key(42)
    start = TODAY - timedelta(days=60)

    async def fact(event_type: str, data: dict) -> None:
        await publish(producer, make_record(event_type, data, source="urn:test"), topic_prefix)

    async with Served(listing_app(ListingSettings(platform=platform, http_port=listing_port)), listing_port) as listing, \
            Served(notifier_app(notifier_settings), notifier_port) as notifier, \
            httpx.AsyncClient(base_url=listing.url, timeout=10) as api:
        # the region's registers, as the listing service and the notifier read them from Kafka
        await fact("care_unit.contracted.v1", {
            "care_unit_id": UNIT_A, "name": UNIT_NAME, "region_code": "19",
            "contract_from": start.isoformat(), "fictive_lists": [{"list_id": "F-VCA1-X", "name": "VC Centrum Dr X"}],
            "recorded_at": rfc3339()})
        await fact("practitioner_role.started.v1", {
            "role_id": "role-l001", "practitioner_id": DOCTOR_1, "practitioner_name": DOCTOR_NAME,
            "care_unit_id": UNIT_A, "profession": "läkare",
            "legitimerad": True, "employment_type": "tillsvidare", "specialty": "allmanmedicin", "fte": 1.0,
            "valid_from": start.isoformat()})
        await fact("person.registered.v1", {
            "patient_key": patient, "id_kind": "personnummer", "birth_date": "1950-01-01", "region_code": "19",
            "protected_identity": False, "status": "folkbokford", "updated_at": rfc3339()})
        async with _vault_pool(migrated_database) as conn:  # the edge that receives person ids
            await IdentityVault(platform.identity_vault_key.get_secret_value()).store(
                conn, patient, PersonId("personnummer", PERSONNUMMER), protected_identity=False, name=PATIENT_NAME)

        async def doctor_list() -> str | None:
            answer = await api.get(f"/units/{UNIT_A}/lists", headers=admin)
            if answer.status_code != 200:
                return None
            return next((x["list_id"] for x in answer.json()["lists"]
                         if x["kind"] == "doctor" and x["role_active"] and x["practitioner_id"] == DOCTOR_1), None)

        list_id = await until(doctor_list, "the doctor's list at the listing service")

        async def listed() -> bool:  # retried until the person fact has been read
            answer = await api.post("/commands/listing.request.v1", headers=admin, json={
                "command_id": str(uuid.uuid4()), "patient_key": patient, "care_unit_id": UNIT_A,
                "requested_at": rfc3339(), "channel": "1177", "origin": "active_choice", "initiated_by": "person",
                "effective_date": TODAY.isoformat()})
            return answer.status_code == 200

        await until(listed, "the patient to be listed")
        await fact("risk.assessed.v1", {
            "assessment_id": "acg-e2e-42", "patient_key": patient, "rub": 5, "acg_version": "12.1",
            "lookback_months": 18, "computed_at": rfc3339(datetime.now(timezone.utc) - timedelta(days=3))})
        await until(lambda: _open_gaps(migrated_database, patient), "the care gap to open", timeout_s=40)

        seen = await asyncio.to_thread(assign_from_the_worklist, tmp_path / "chromium-profile",
                                       f"{notifier.url}/units/{UNIT_A}/worklist", sign_in, list_id)

        assert seen["login_title"].startswith("Logga in")
        assert seen["worklist_url"] == f"{notifier.url}/units/{UNIT_A}/worklist"
        assert seen["row_before"] is not None, "the patient is on the worklist by personnummer"
        assert PATIENT_NAME in seen["row_before"], "and by name"
        assert "Har aldrig fått fast läkarkontakt" in seen["row_before"] and "RUB 5" in seen["row_before"]
        assert patient not in seen["row_before"]
        assert UNIT_NAME in seen["unit"] and UNIT_A in seen["unit"], "the unit by name, its HSA-id secondary"
        assert f"{DOCTOR_NAME} {DOCTOR_1}" in seen["doctors"], "the doctor by name with the HSA-id"
        assert seen["options"] and seen["options"][0].startswith(f"{DOCTOR_NAME} · {DOCTOR_1}")
        assert "1 öppna vårdluckor" in seen["summary"] and "1 RUB 4–5" in seen["summary"]
        assert "Fast läkarkontakt tilldelad" in seen["notice"] or "godkänd" in seen["notice"]
        assert SHOWN not in seen["page_after"], "the gap disappeared from the worklist"
        session = seen["cookies"]["flk_worklist_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        if provider:
            assert seen["provider_url"].startswith(f"{provider.issuer()}/protocol/openid-connect/auth?")
            assert "code_challenge_method=S256" in seen["provider_url"]
            assert jwt.decode(session["value"], options={"verify_signature": False})["iss"] == provider.issuer()
        assert await _open_gaps(migrated_database, patient) == 0
        resolution = await _fetchval(migrated_database,
                                     "SELECT resolution FROM notifier.care_gap WHERE patient_key = $1", patient)
        assert resolution == "fast_lakarkontakt_assigned"


class _vault_pool:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def __aenter__(self):
        import asyncpg

        self.conn = await asyncpg.connect(self.dsn)
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()


async def _fetchval(dsn: str, sql: str, *args: Any) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _open_gaps(dsn: str, patient: str) -> int:
    return await _fetchval(dsn, "SELECT count(*) FROM notifier.care_gap WHERE patient_key = $1 AND resolved_at IS NULL",
                           patient)
