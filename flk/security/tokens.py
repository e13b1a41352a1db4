"""Bearer tokens: signed JWTs naming the caller, their care unit(s) and role.

Claims: ``iss``, ``aud``, ``exp``, ``iat``, ``sub`` (HSA-id of the person, or a service
name), ``role`` and ``units`` (HSA-ids of the care units the caller acts for); a patient
token (role ``patient``, the 1177 view) carries ``patient_key`` instead of units.

These local tokens (HS256 by default, ``flk token issue``) serve development, tests and service
callers. When the region's identity provider is configured (``FLK_OIDC_ISSUER``), a token whose
``iss`` is that provider is verified by :mod:`flk.security.oidc` instead (its keys, its claims).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache

import jwt

from flk.settings import PlatformSettings


class Role(StrEnum):
    CLINICIAN = "clinician"  # staff of a care unit: their unit's patients
    VERKSAMHETSCHEF = "verksamhetschef"  # head of a unit: their unit's patients and lists
    LISTING_ADMIN = "listing_admin"  # the region's listing administrators: every unit, audit-logged
    ANALYST = "analyst"  # aggregates only, never a single patient
    PATIENT = "patient"  # the 1177 patient view: only themselves
    SERVICE = "service"  # another flk service
    EHR_INTEGRATION = "ehr_integration"  # an EHR's integration (FHIR ingest): writes visits of its units, reads nothing


class InvalidToken(Exception):
    """Why a token was refused (safe to show the caller)."""


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    units: frozenset[str]
    patient_key: str | None = None


def issue_token(settings: PlatformSettings, subject: str, role: Role, units: list[str] | None = None,
                patient_key: str | None = None, ttl: timedelta = timedelta(hours=8),
                now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    claims: dict = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "role": role.value,
        "units": sorted(units or []),
    }
    if patient_key is not None:
        claims["patient_key"] = patient_key
    key = settings.jwt_signing_key or settings.jwt_verify_key
    return jwt.encode(claims, key.get_secret_value(), algorithm=settings.jwt_algorithm)


@lru_cache(maxsize=8)
def _verification_key(algorithm: str, key: str) -> jwt.PyJWK:
    """The verify key parsed once (a PEM public key costs more to load than to verify with), bound
    to its algorithm. The key is cached, never a token or a decision."""
    alg = jwt.get_algorithm_by_name(algorithm)
    return jwt.PyJWK(alg.to_jwk(alg.prepare_key(key), as_dict=True), algorithm)


def _from_provider(settings: PlatformSettings, token: str) -> bool:
    """Whether the token claims to come from the configured identity provider (unverified peek;
    the verifier it selects then checks everything)."""
    if settings.oidc_issuer is None:
        return False
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("iss") == settings.oidc_issuer
    except jwt.InvalidTokenError:
        return False


def verify_token(settings: PlatformSettings, token: str) -> Principal:
    """The caller of a local or (when configured) identity-provider token. May block on the
    provider (discovery, key set) for a provider token: on an event loop use :func:`verify_token_async`."""
    if _from_provider(settings, token):
        from flk.security.oidc import oidc_verifier

        return oidc_verifier(settings).verify(token)
    return verify_local_token(settings, token)


async def verify_token_async(settings: PlatformSettings, token: str) -> Principal:
    """:func:`verify_token` for an event loop: a provider token whose keys must be fetched first
    is verified in a worker thread; every other token inline."""
    if not _from_provider(settings, token):
        return verify_local_token(settings, token)
    import asyncio

    from flk.security.oidc import KeysNeeded, oidc_verifier

    verifier = oidc_verifier(settings)
    try:
        return verifier.verify(token, may_fetch=False)
    except KeysNeeded:
        return await asyncio.to_thread(verifier.verify, token)


def verify_local_token(settings: PlatformSettings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            _verification_key(settings.jwt_algorithm, settings.jwt_verify_key.get_secret_value()),
            algorithms=[settings.jwt_algorithm],  # never "none", never a caller-chosen algorithm
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("token signature is not valid") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"token not valid: {type(exc).__name__}") from None
    try:
        role = Role(claims.get("role"))
    except ValueError:
        raise InvalidToken("token has no known role") from None
    units = claims.get("units") or []
    if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
        raise InvalidToken("token's units claim must be a list of HSA-ids")
    patient_key = claims.get("patient_key")
    if role is Role.PATIENT and not patient_key:
        raise InvalidToken("a patient token must name its patient_key")
    return Principal(subject=str(claims["sub"]), role=role, units=frozenset(units), patient_key=patient_key)
