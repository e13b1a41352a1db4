"""Worklist sign-in through the region's identity provider (authorization code flow with PKCE).

Routes (on the notifier's app, when ``FLK_OIDC_ISSUER`` and ``FLK_NOTIFIER_WORKLIST_OIDC_CLIENT_ID``
are set; docs/identity-provider.md):
* ``GET /login/oidc?next=...`` — to the provider's authorization endpoint (from its discovery
  document) with a fresh state, nonce and S256 code challenge, kept in a short-lived cookie.
* ``GET /login/oidc/callback`` — checks the state, exchanges the code (with the code verifier) at
  the token endpoint, verifies the access token like every API does (issuer, audience, keys,
  claim mapping) and the ID token's nonce, and keeps the access token in the worklist's session
  cookie, as the pasted-token form does. Then on to the page the user asked for.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from flk.security.oidc import oidc_verifier
from flk.security.tokens import InvalidToken, verify_token_async
from services.notifier.domain.sign_in import CALLBACK_PATH, SignInFlow, authorization_url, callback_matches
from services.notifier.domain.worklist import safe_next_path
from services.notifier.entrypoints.worklist import SECURITY_HEADERS, SESSION_COOKIE, WorklistPages

log = logging.getLogger(__name__)

FLOW_COOKIE = "flk_worklist_signin"
FLOW_PATH = "/login/oidc"
FLOW_MAX_AGE_S = 600

FAILED = "Inloggningen hos regionens identitetsleverantör misslyckades. Försök igen."


class ProviderEndpoints:
    """The provider's authorization and token endpoints, from its discovery document (fetched once)."""

    def __init__(self, issuer: str, timeout_s: float) -> None:
        self.issuer, self.timeout_s = issuer, timeout_s
        self._document: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> dict[str, Any]:
        async with self._lock:
            if self._document is None:
                async with httpx.AsyncClient(timeout=self.timeout_s) as http:
                    answer = await http.get(f"{self.issuer}/.well-known/openid-configuration")
                answer.raise_for_status()
                document = answer.json()
                if document.get("issuer") != self.issuer:
                    raise ValueError("the discovery document names another issuer")
                self._document = document
            return self._document


def install_sign_in(app: FastAPI, pages: WorklistPages) -> None:
    settings = pages.settings
    platform = settings.platform
    assert settings.worklist_oidc_client_id is not None and platform.oidc_issuer is not None
    client_id = settings.worklist_oidc_client_id
    redirect_uri = f"{settings.worklist_base_url}{CALLBACK_PATH}"
    endpoints = ProviderEndpoints(platform.oidc_issuer, platform.oidc_http_timeout_s)

    def failed(request: Request, outcome: str, status: int = 401) -> Response:
        pages.probe(request, "notifier.worklist.login", outcome)
        return pages.login_page(request, status, error=FAILED)

    @app.get(FLOW_PATH, include_in_schema=False)
    async def sign_in(request: Request, next: str = "/") -> Response:
        try:
            provider = await endpoints.get()
        except (httpx.HTTPError, ValueError):
            return failed(request, "provider_unavailable", 503)
        flow = SignInFlow.new(safe_next_path(next, "/"))
        response = pages.redirect(authorization_url(provider["authorization_endpoint"], client_id, redirect_uri, flow))
        # Lax, not Strict: the provider's redirect back is a cross-site navigation
        response.set_cookie(FLOW_COOKIE, flow.to_cookie(), max_age=FLOW_MAX_AGE_S, httponly=True, samesite="lax",
                            secure=pages.secure_cookies(request), path=FLOW_PATH)
        return response

    @app.get(CALLBACK_PATH, include_in_schema=False)
    async def callback(request: Request, code: str | None = None, state: str | None = None) -> Response:
        flow = SignInFlow.from_cookie(request.cookies.get(FLOW_COOKIE))
        if not callback_matches(flow, state) or not code:  # also the provider's own ?error=...
            return failed(request, "oidc_state_mismatch" if code else "oidc_no_code", 400)
        assert flow is not None
        try:
            provider = await endpoints.get()
            async with httpx.AsyncClient(timeout=platform.oidc_http_timeout_s) as http:
                answer = await http.post(provider["token_endpoint"], data={
                    "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                    "client_id": client_id, "code_verifier": flow.code_verifier})
        except (httpx.HTTPError, ValueError):
            return failed(request, "provider_unavailable", 503)
        tokens = answer.json() if answer.status_code == 200 else {}
        access_token, id_token = tokens.get("access_token"), tokens.get("id_token")
        if not isinstance(access_token, str) or not isinstance(id_token, str):
            return failed(request, "oidc_code_refused")
        try:
            principal = await verify_token_async(platform, access_token)
            id_claims = await asyncio.to_thread(oidc_verifier(platform).decode, id_token, audience=client_id)
        except InvalidToken:
            return failed(request, "invalid_token")
        if not secrets.compare_digest(str(id_claims.get("nonce", "")), flow.nonce):
            return failed(request, "oidc_nonce_mismatch")
        # a page of our own that moves on: the session cookie is SameSite=Strict, and a navigation
        # that began at the provider would not carry it
        body = pages.env.get_template("signed_in.html").render(principal=None, csrf_token="", next=flow.next_path)
        response = HTMLResponse(body, headers=SECURITY_HEADERS)
        response.set_cookie(SESSION_COOKIE, access_token, httponly=True, samesite="strict",
                            secure=pages.secure_cookies(request), path="/")
        response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        pages.set_csrf_cookie(request, response, secrets.token_urlsafe(32))
        pages.probe(request, "notifier.worklist.login", "ok")
        log.info("worklist sign-in through the identity provider by %s (%s)", principal.subject, principal.role.value)
        return response
