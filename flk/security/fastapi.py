"""FastAPI dependencies: the bearer token, and audit-logged access checks.

Routes declare ``principal: Annotated[Principal, Depends(authenticated)]`` and call
``await guard.patient(...)`` / ``guard.unit(...)`` before returning patient data; the guard
writes the audit record whether access is allowed or denied.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flk.security.access import may_read_patient, may_read_region_figures, may_read_unit, may_read_unit_patients
from flk.security.audit import AuditLog, AuditRecord
from flk.security.tokens import InvalidToken, Principal, verify_token_async
from flk.settings import PlatformSettings

_bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from a valid bearer token (401 otherwise). App state must hold `platform_settings`."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    settings: PlatformSettings = request.app.state.platform_settings
    try:
        return await verify_token_async(settings, credentials.credentials)
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from None


@dataclass
class AccessGuard:
    principal: Principal
    audit: AuditLog
    request_id: str

    async def patient(self, action: str, patient_key: str, listing_unit: str | None, purpose: str | None = None) -> None:
        allowed = may_read_patient(self.principal, patient_key, listing_unit)
        await self.audit.record(AuditRecord(
            self.principal, action, "allowed" if allowed else "denied", unit_id=listing_unit,
            patient_key=patient_key, purpose=purpose, request_id=self.request_id,
        ))
        if not allowed:
            # 404, not 403: a unit must not learn that another unit's patient exists
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such patient among your unit's patients")

    async def unit(self, action: str, unit_id: str, patient_level: bool = False, always_audit: bool = False) -> None:
        """Unit-level access. Denials and patient-level reads are always audit-logged; allowed
        aggregate reads only when `always_audit` (e.g. counts derived from patient data)."""
        allowed = (may_read_unit_patients if patient_level else may_read_unit)(self.principal, unit_id)
        if patient_level or always_audit or not allowed:
            await self.audit.record(AuditRecord(
                self.principal, action, "allowed" if allowed else "denied", unit_id=unit_id,
                request_id=self.request_id,
            ))
        if not allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"your token does not give access to unit {unit_id}")


    async def region(self, action: str) -> None:
        """Region-level aggregates: denials are audit-logged."""
        if not may_read_region_figures(self.principal):
            await self.audit.record(AuditRecord(self.principal, action, "denied", request_id=self.request_id))
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="your token does not give access to region figures")


async def access_guard(
    request: Request, principal: Annotated[Principal, Depends(authenticated)]
) -> AccessGuard:
    """App state must hold `audit_log` (an AuditLog)."""
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    return AccessGuard(principal, request.app.state.audit_log, request_id)
