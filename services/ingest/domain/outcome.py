"""FHIR answers: an ``OperationOutcome`` naming each problem with its FHIRPath, and a bundle's
``batch-response`` / ``transaction-response`` with one entry per request entry."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.ingest.domain.fhir import Issue

#: what each outcome answers, as HTTP status (FHIR's entry.response.status text)
OUTCOME_STATUS: dict[str, str] = {
    "recorded": "201 Created",
    "replaced": "200 OK",
    "cancelled": "200 OK",
    "not_a_contact": "200 OK",
    "unchanged": "200 OK",
    "stale": "200 OK",
    "identity": "200 OK",
}
OUTCOME_TEXT: dict[str, str] = {
    "recorded": "the visit was recorded",
    "replaced": "a new version: the earlier visit was cancelled and this one recorded",
    "cancelled": "the Encounter is cancelled (its visit, if one was recorded, was cancelled)",
    "not_a_contact": "not (yet) a care contact: nothing recorded (an earlier version's visit was cancelled)",
    "unchanged": "already ingested: nothing changed",
    "stale": "an older version than the one ingested: nothing changed",
    "identity": "read for the patient's identity only (not stored)",
}

#: issue type -> HTTP status of an answer that carries only such errors
_ISSUE_STATUS = {"structure": 400, "not-supported": 400, "too-costly": 413, "conflict": 409, "forbidden": 403,
                 "security": 403}


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [
        {"severity": i.severity, "code": i.code, "diagnostics": i.diagnostics, "expression": [i.expression]}
        for i in issues]}


def information(outcome: str, visit_id: str | None = None) -> dict[str, Any]:
    text = OUTCOME_TEXT[outcome] + (f" (visit {visit_id})" if visit_id else "")
    return {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": text,
         "details": {"coding": [{"system": "urn:flk:fhir-ingest:outcome", "code": outcome}]}}]}


def status_for(issues: Iterable[Issue]) -> int:
    """400 when the resource could not be read (structure), 413 too big, 409 a conflicting version, 403 not
    your unit, else 422 (readable but breaking the profile or the mapping's rules)."""
    codes = {i.code for i in issues if i.severity in ("error", "fatal")}
    for code in ("too-costly", "forbidden", "security", "conflict", "structure", "not-supported"):
        if code in codes:
            return _ISSUE_STATUS[code]
    return 422


_REASON = {200: "OK", 201: "Created", 400: "Bad Request", 403: "Forbidden", 409: "Conflict", 413: "Payload Too Large",
           422: "Unprocessable Entity"}


def status_text(code: int) -> str:
    return f"{code} {_REASON.get(code, '')}".strip()


def bundle_response(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": entries}
