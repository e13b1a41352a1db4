"""Tokens of the region's identity provider (OIDC): discovery, JWKS, claim mapping.

Staff sign in at the region's provider (SITHS cards); its access tokens reach the services as
bearer tokens. :class:`OidcVerifier` checks one: signature against the provider's published keys
(RS256/ES256, fetched through OIDC discovery and cached), issuer, audience, expiry; then
:func:`principal_from_claims` maps the provider's claims to this project's role and HSA unit ids
(settings ``FLK_OIDC_*``, docs/identity-provider.md).

Key rotation needs no restart: a token signed with a key id (``kid``) the cached key set does not
hold makes the verifier fetch the key set again, at most once per ``oidc_jwks_min_refetch_s`` (so
made-up key ids cannot turn every request into a call to the provider). The cached set is also
refreshed after ``oidc_jwks_cache_s``, so a withdrawn key stops verifying.

No I/O at import or construction: discovery and the first key fetch happen at the first token.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

import jwt

from flk.security.tokens import InvalidToken, Principal, Role
from flk.settings import PlatformSettings


class KeysNeeded(Exception):
    """Verifying this token needs a fetch from the provider (discovery or keys): blocking I/O."""


class ProviderUnavailable(InvalidToken):
    """The provider's discovery document or key set could not be read."""


def check_oidc_settings(settings: PlatformSettings) -> None:
    """Fail fast at start-up on a mapping that could never yield a principal."""
    issuer = settings.oidc_issuer or ""
    if not issuer.startswith(("https://", "http://")) or issuer.endswith("/"):
        raise ValueError("FLK_OIDC_ISSUER must be the provider's issuer URL, without a trailing slash")
    if settings.environment == "production" and not issuer.startswith("https://"):
        raise ValueError("FLK_OIDC_ISSUER must use https in production")
    if not settings.oidc_role_map:
        raise ValueError("FLK_OIDC_ROLE_MAP must map at least one of the provider's roles")
    for provider_role, role in settings.oidc_role_map.items():
        if role not in Role.__members__.values() or role == Role.PATIENT:
            raise ValueError(f"FLK_OIDC_ROLE_MAP: {provider_role!r} maps to {role!r}, not a staff role of this project")
    if not settings.oidc_algorithms:
        raise ValueError("FLK_OIDC_ALGORITHMS must name RS256 and/or ES256")


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``realm_access.roles``), or None. A key that itself holds a dot
    (as some providers' namespaced claims do) is found as well."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise InvalidToken(f"token's {what} claim must be a string or a list of strings")


def principal_from_claims(claims: Mapping[str, Any], *, subject_claim: str, roles_claim: str, units_claim: str,
                          role_map: Mapping[str, str]) -> Principal:
    """This project's principal from a verified provider token's claims (pure).

    The role: the first entry of ``role_map`` (in its order) whose provider role the token holds;
    roles the map does not name are ignored; none mapped is refused. Units: the HSA-ids at
    ``units_claim``. A provider token never yields a patient principal (that is the 1177 view's)."""
    held = set(_strings(claim_at(claims, roles_claim), "roles"))
    role = next((Role(mapped) for provider_role, mapped in role_map.items() if provider_role in held), None)
    if role is None or role is Role.PATIENT:
        raise InvalidToken("token has no role this service knows")
    subject = claim_at(claims, subject_claim)
    if not isinstance(subject, str) or not subject:
        raise InvalidToken(f"token has no {subject_claim} claim")
    units = _strings(claim_at(claims, units_claim), "units")
    return Principal(subject=subject, role=role, units=frozenset(units))


class OidcVerifier:
    """Verifies the access tokens of one issuer for one audience; thread-safe; one per settings."""

    def __init__(self, settings: PlatformSettings) -> None:
        assert settings.oidc_issuer is not None
        self.s = settings
        self.issuer = settings.oidc_issuer
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")  # monotonic time of the last key-set fetch

    # ---- fetching -------------------------------------------------------------------------------

    def _get_json(self, url: str) -> Any:
        request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "flk"})
        try:
            with urllib.request.urlopen(request, timeout=self.s.oidc_http_timeout_s) as response:  # noqa: S310 - https/http URL from settings
                return json.load(response)
        except (OSError, ValueError) as exc:
            raise ProviderUnavailable(f"identity provider not reachable ({type(exc).__name__})") from None

    def _discover(self) -> str:
        document = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ProviderUnavailable("identity provider's discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ProviderUnavailable("identity provider's discovery document has no jwks_uri")
        return jwks_uri

    def refresh_keys(self) -> None:
        """Discovery (once) and the key set (again): blocking I/O, call it off the event loop."""
        with self._lock:
            if self._jwks_uri is None:
                self._jwks_uri = self._discover()
            document = self._get_json(self._jwks_uri)
            try:
                key_set = jwt.PyJWKSet.from_dict(document)
            except jwt.PyJWKSetError:
                key_set = None
            keys = {} if key_set is None else {
                k.key_id: k for k in key_set.keys
                if k.key_id and k.public_key_use in (None, "sig") and k.algorithm_name in self.s.oidc_algorithms}
            self._keys, self._fetched_at = keys, time.monotonic()

    def _key_for(self, kid: str, may_fetch: bool) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        key = self._keys.get(kid)
        if key is not None and age < self.s.oidc_jwks_cache_s:
            return key
        stale = key is not None  # known kid, but the set is old: refetch (a withdrawn key stops verifying)
        if stale or self._jwks_uri is None or age >= self.s.oidc_jwks_min_refetch_s:
            if not may_fetch:
                raise KeysNeeded()
            self.refresh_keys()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("token signed with a key the identity provider does not publish")
        return key

    # ---- verifying ------------------------------------------------------------------------------

    def decode(self, token: str, *, audience: str | None = None, may_fetch: bool = True) -> dict[str, Any]:
        """The verified claims (signature, issuer, audience, expiry). ``may_fetch=False`` raises
        :class:`KeysNeeded` instead of blocking on the provider."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("token not valid: DecodeError") from None
        kid, alg = header.get("kid"), header.get("alg")
        if alg not in self.s.oidc_algorithms:
            raise InvalidToken("token signed with an algorithm this service does not accept")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token names no signing key (kid)")
        key = self._key_for(kid, may_fetch)
        try:
            return jwt.decode(
                token, key, algorithms=[key.algorithm_name], audience=audience or self.s.oidc_audience,
                issuer=self.issuer, leeway=self.s.jwt_leeway_s,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature is not valid") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"token not valid: {type(exc).__name__}") from None

    def verify(self, token: str, *, may_fetch: bool = True) -> Principal:
        claims = self.decode(token, may_fetch=may_fetch)
        return principal_from_claims(claims, subject_claim=self.s.oidc_subject_claim,
                                     roles_claim=self.s.oidc_roles_claim, units_claim=self.s.oidc_units_claim,
                                     role_map=self.s.oidc_role_map)


_verifiers: dict[tuple, OidcVerifier] = {}
_verifiers_lock = threading.Lock()


def oidc_verifier(settings: PlatformSettings) -> OidcVerifier:
    """The verifier of these settings' provider, shared by every request (its key cache with it)."""
    key = (settings.oidc_issuer, settings.oidc_audience, tuple(settings.oidc_algorithms), settings.oidc_subject_claim,
           settings.oidc_roles_claim, settings.oidc_units_claim, tuple(settings.oidc_role_map.items()),
           settings.oidc_jwks_cache_s, settings.oidc_jwks_min_refetch_s, settings.oidc_http_timeout_s,
           settings.jwt_leeway_s)
    with _verifiers_lock:
        verifier = _verifiers.get(key)
        if verifier is None:
            verifier = _verifiers[key] = OidcVerifier(settings)
        return verifier
