"""Access matrix over every endpoint of every running service: who may read what, which tokens are
refused, and that every read of patient data leaves an audit record.

To cover a new endpoint, add one line to ENDPOINTS: its service, method, path (with
``{patient_key}`` / ``{unit_id}`` / ``{region_code}``; they name PATIENT_A, UNIT_A and the
deployment's region, where PATIENT_A is listed), and its scope, which fixes the expected answer for
each caller below.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import httpx
import pytest

import uuid

from flk.security.tokens import Role
from services.listing.entrypoints.commands_api import PATIENT_COMMANDS
from tests.support.builders import UNIT_A, UNIT_B

from reliability_deployment import PATIENT_A, PATIENT_B, PATIENT_C
from hostile_events import example_pool
from reliability_support import bearer, forged_tokens, token


class Scope(Enum):
    PATIENT = "one patient's data"  # readable by their listing unit's staff, region admins, the patient
    SELF = "the caller's own data (1177 patient view)"  # patient tokens only
    UNIT_AGGREGATE = "a unit's aggregates"  # staff of the unit, region admins, analysts
    UNIT_PATIENTS = "a unit's patient-level list (worklist)"  # staff of the unit, region admins
    UNIT_CONFIG = "a unit's alert configuration"  # the unit's verksamhetschef, region admins
    COMMAND = "a command for a patient at a unit"  # the unit's staff, region admins (patients: some commands)
    REGION_AGGREGATE = "the region's goal figures"  # anyone working in the region, not patients


@dataclass(frozen=True)
class Endpoint:
    service: str
    method: str
    path: str
    scope: Scope
    #: audit: 'every' = every authenticated call leaves a row; 'denied' = refusals do; 'allowed' = reads do
    audit: str = "every"
    body: dict | None = None
    patient_command: bool = False  # a command a patient may send for themselves (1177)
    html: bool = False  # a page for people: refusals are HTML, and no token at all sends to the login form
    query: str = ""  # appended to the path when called

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


ROUTING_BODY = {"unit_name": "Vårdcentral VCA1", "email_to": ["vc@example.se"], "mode": "daily_digest",
                "quiet_hours": None, "escalation_after_days": 14}

COMMAND_TYPES = ("listing.request.v1", "listing.end.v1", "fast_lakarkontakt.assign.v1", "fast_lakarkontakt.end.v1",
                 "fast_lakarkontakt.decline.v1", "fast_vardkontakt.appoint.v1", "listing.consent.v1")


def command_body(command_type: str) -> dict:
    """A valid command (values from the JSON Schema via hypothesis-jsonschema) for PATIENT_C at UNIT_A."""
    from flk.events.contracts import ContractViolation, contracts

    for example in example_pool(command_type):
        body = {**example, "patient_key": PATIENT_C, "care_unit_id": UNIT_A, "command_id": str(uuid.uuid4())}
        try:
            contracts().validate(command_type, body)
            return body
        except ContractViolation:
            continue
    raise AssertionError(f"no valid example of {command_type}")


ENDPOINTS = [
    Endpoint("listing", "GET", "/patients/{patient_key}", Scope.PATIENT),
    Endpoint("listing", "GET", "/patients/{patient_key}/history", Scope.PATIENT),
    Endpoint("listing", "GET", "/me/fast-lakarkontakt", Scope.SELF, audit="allowed"),
    Endpoint("listing", "GET", "/units/{unit_id}/lists", Scope.UNIT_AGGREGATE),
    *(Endpoint("listing", "POST", f"/commands/{t}", Scope.COMMAND, body=command_body(t), patient_command=t in
               PATIENT_COMMANDS) for t in COMMAND_TYPES),
    Endpoint("continuity", "GET", "/patients/{patient_key}/continuity", Scope.PATIENT),
    Endpoint("continuity", "GET", "/units/{unit_id}/continuity", Scope.UNIT_AGGREGATE, audit="denied"),
    Endpoint("continuity", "GET", "/regions/{region_code}/goals", Scope.REGION_AGGREGATE, audit="denied",
             query="?baseline=2026-01-01"),
    Endpoint("continuity", "GET", "/regions/{region_code}/coverage", Scope.REGION_AGGREGATE, audit="denied"),
    Endpoint("notifier", "GET", "/units/{unit_id}/care-gaps/summary", Scope.UNIT_AGGREGATE),
    Endpoint("notifier", "GET", "/units/{unit_id}/worklist", Scope.UNIT_PATIENTS, html=True),
    Endpoint("notifier", "GET", "/units/{unit_id}/routing", Scope.UNIT_CONFIG),
    Endpoint("notifier", "PUT", "/units/{unit_id}/routing", Scope.UNIT_CONFIG, body=ROUTING_BODY),
]

REFUSED = {403, 404}


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role
    units: tuple[str, ...] = ()
    patient_key: str | None = None

    @property
    def subject(self) -> str:
        return f"SE2321000016-{self.name.upper().replace('_', '')}"


CALLERS = [
    Caller("own_clinician", Role.CLINICIAN, (UNIT_A,)),
    Caller("own_chief", Role.VERKSAMHETSCHEF, (UNIT_A,)),
    Caller("other_clinician", Role.CLINICIAN, (UNIT_B,)),
    Caller("other_chief", Role.VERKSAMHETSCHEF, (UNIT_B,)),
    Caller("own_patient", Role.PATIENT, patient_key=PATIENT_A),
    Caller("other_patient", Role.PATIENT, patient_key=PATIENT_B),
    Caller("analyst", Role.ANALYST),
    Caller("region_admin", Role.LISTING_ADMIN),
]

OK = {200}
DECIDED = {200, 409, 422}  # let through: accepted, rejected by a rule, or refused as unusable (after the access check)
#: expected status per scope and caller (a set: unit-level refusals may be 403 or 404)
EXPECTED: dict[Scope, dict[str, set[int]]] = {
    Scope.PATIENT: {"own_clinician": OK, "own_chief": OK, "other_clinician": {404}, "other_chief": {404},
                    "own_patient": OK, "other_patient": {404}, "analyst": {404}, "region_admin": OK},
    Scope.SELF: {"own_clinician": REFUSED, "own_chief": REFUSED, "other_clinician": REFUSED, "other_chief": REFUSED,
                 "own_patient": OK, "other_patient": OK, "analyst": REFUSED, "region_admin": REFUSED},
    Scope.COMMAND: {"own_clinician": DECIDED, "own_chief": DECIDED, "other_clinician": REFUSED,
                    "other_chief": REFUSED, "own_patient": REFUSED, "other_patient": REFUSED,
                    "analyst": REFUSED, "region_admin": DECIDED},
    Scope.UNIT_AGGREGATE: {"own_clinician": OK, "own_chief": OK, "other_clinician": REFUSED,
                           "other_chief": REFUSED, "own_patient": REFUSED, "other_patient": REFUSED,
                           "analyst": OK, "region_admin": OK},
    Scope.UNIT_PATIENTS: {"own_clinician": OK, "own_chief": OK, "other_clinician": REFUSED,
                          "other_chief": REFUSED, "own_patient": REFUSED, "other_patient": REFUSED,
                          "analyst": REFUSED, "region_admin": OK},
    Scope.REGION_AGGREGATE: {"own_clinician": OK, "own_chief": OK, "other_clinician": OK, "other_chief": OK,
                             "own_patient": REFUSED, "other_patient": REFUSED, "analyst": OK, "region_admin": OK},
    Scope.UNIT_CONFIG: {"own_clinician": REFUSED, "own_chief": OK, "other_clinician": REFUSED,
                        "other_chief": REFUSED, "own_patient": REFUSED, "other_patient": REFUSED,
                        "analyst": REFUSED, "region_admin": OK},
}


def _path(endpoint: Endpoint) -> str:
    from services.continuity.settings import ContinuityServiceSettings

    region = ContinuityServiceSettings.model_fields["region_id"].default  # the deployment's worker's region
    return endpoint.path.format(patient_key=PATIENT_A, unit_id=UNIT_A, region_code=region) + endpoint.query


async def _call(client: httpx.AsyncClient, base: str, endpoint: Endpoint, headers: dict) -> httpx.Response:
    return await client.request(endpoint.method, base + _path(endpoint), headers=headers, json=endpoint.body)


async def test_every_route_of_every_running_service_is_in_the_matrix(deployment):
    """A route added to a service without a line in ENDPOINTS fails here (probes and /metrics aside)."""
    listed = {(e.service, e.method, e.path) for e in ENDPOINTS}
    found = set()
    async with httpx.AsyncClient(timeout=5) as client:
        for name, service in deployment.services.items():
            spec = (await client.get(service.base_url + "/openapi.json")).json()
            for path, ops in spec["paths"].items():
                found |= {(name, method.upper(), path) for method in ops}
    assert found - listed == set(), "add these routes to ENDPOINTS"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_each_caller_gets_exactly_what_the_access_rules_allow_and_every_patient_data_read_is_audited(
        deployment, endpoint):
    base = deployment.url(endpoint.service)
    expected = EXPECTED[endpoint.scope]
    got, audit_problems = {}, []
    async with httpx.AsyncClient(timeout=10) as client:
        for caller in CALLERS:
            last = await deployment.last_audit_id()
            headers = bearer(token(deployment.settings, caller.role, list(caller.units), subject=caller.subject,
                                   patient_key=caller.patient_key))
            response = await _call(client, base, endpoint, headers)
            got[caller.name] = response.status_code
            allowed = response.status_code in (DECIDED if endpoint.scope is Scope.COMMAND else OK)
            if not allowed:
                assert PATIENT_A not in response.text, f"{caller.name}: a refusal must not echo the patient key"
                assert (response.text if endpoint.html else response.json().get("detail")), \
                    f"{caller.name}: a refusal says why"
            rows = [r for r in await deployment.audit_rows_after(last) if r["actor"] == caller.subject]
            must_audit = endpoint.audit == "every" or (endpoint.audit == "denied" and not allowed) \
                or (endpoint.audit == "allowed" and allowed)
            if must_audit:
                outcomes = {r["outcome"] for r in rows}
                if outcomes != {"allowed" if allowed else "denied"}:
                    audit_problems.append((caller.name, response.status_code, [dict(r) for r in rows]))
                elif endpoint.scope in (Scope.PATIENT, Scope.SELF, Scope.COMMAND) and {r["patient_key"] for r in rows} \
                        != {{Scope.PATIENT: PATIENT_A, Scope.SELF: caller.patient_key, Scope.COMMAND: PATIENT_C}[endpoint.scope]}:
                    audit_problems.append((caller.name, "patient key not recorded", [dict(r) for r in rows]))
    wrong = {name: (status, sorted(expected[name])) for name, status in got.items() if status not in expected[name]}
    assert wrong == {}, f"{endpoint}: unexpected answers (got, expected)"
    assert audit_problems == []


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_missing_expired_unsigned_wrongly_signed_and_foreign_tokens_get_401(deployment, endpoint):
    base = deployment.url(endpoint.service)
    answers = {}
    async with httpx.AsyncClient(timeout=10) as client:
        anonymous = await _call(client, base, endpoint, {})
        answers["no_token"] = anonymous.status_code
        if endpoint.html and anonymous.is_redirect and anonymous.headers["location"].startswith("/login"):
            answers["no_token"] = 401  # a page sends a visitor without a token to the login form
        basic = await _call(client, base, endpoint, {"Authorization": "Basic YWRtaW46YWRtaW4="})
        answers["basic_auth"] = 401 if endpoint.html and basic.is_redirect else basic.status_code
        for name, forged in forged_tokens(deployment.settings).items():
            response = await _call(client, base, endpoint, bearer(forged))
            answers[name] = response.status_code
            assert PATIENT_A not in response.text
    assert {name: status for name, status in answers.items() if status != 401} == {}


async def test_a_patient_token_sees_its_own_patient_and_nobody_else(deployment):
    own = bearer(token(deployment.settings, Role.PATIENT, patient_key=PATIENT_A, subject="patient-a"))
    async with httpx.AsyncClient(timeout=10) as client:
        base = deployment.url("continuity")
        mine = await client.get(f"{base}/patients/{PATIENT_A}/continuity", headers=own)
        theirs = await client.get(f"{base}/patients/{PATIENT_B}/continuity", headers=own)
    assert mine.status_code == 200 and mine.json()["patient_key"] == PATIENT_A
    assert PATIENT_B not in mine.text
    assert theirs.status_code == 404 and PATIENT_B not in theirs.text


async def test_unit_a_staff_never_see_unit_b_patients_whichever_patient_they_ask_for(deployment):
    a_staff = bearer(token(deployment.settings, Role.CLINICIAN, [UNIT_A], subject="staff-a"))
    b_staff = bearer(token(deployment.settings, Role.CLINICIAN, [UNIT_B], subject="staff-b"))
    async with httpx.AsyncClient(timeout=10) as client:
        base = deployment.url("continuity")
        answers = {
            ("A", "B"): (await client.get(f"{base}/patients/{PATIENT_B}/continuity", headers=a_staff)).status_code,
            ("B", "A"): (await client.get(f"{base}/patients/{PATIENT_A}/continuity", headers=b_staff)).status_code,
            ("A", "A"): (await client.get(f"{base}/patients/{PATIENT_A}/continuity", headers=a_staff)).status_code,
            ("B", "B"): (await client.get(f"{base}/patients/{PATIENT_B}/continuity", headers=b_staff)).status_code,
        }
    assert answers == {("A", "B"): 404, ("B", "A"): 404, ("A", "A"): 200, ("B", "B"): 200}
