"""Signing in to the worklist at the region's identity provider: the authorization code flow with
PKCE (RFC 7636, S256), pure parts.

The flow's secrets (state, nonce, code verifier) and where to go afterwards travel in one short-lived
HttpOnly cookie between ``/login/oidc`` and its callback; the state in the callback's query must be
the cookie's (a login started elsewhere is refused), and the ID token's nonce the cookie's.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

CALLBACK_PATH = "/login/oidc/callback"


@dataclass(frozen=True)
class SignInFlow:
    state: str
    nonce: str
    code_verifier: str
    next_path: str

    @classmethod
    def new(cls, next_path: str) -> SignInFlow:
        return cls(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                   code_verifier=secrets.token_urlsafe(64), next_path=next_path)

    @property
    def code_challenge(self) -> str:
        return code_challenge(self.code_verifier)

    def to_cookie(self) -> str:
        return base64.urlsafe_b64encode(json.dumps(asdict(self)).encode()).decode().rstrip("=")

    @classmethod
    def from_cookie(cls, value: str | None) -> SignInFlow | None:
        """The flow the cookie carries, or None for a missing or malformed cookie."""
        if not value or len(value) > 2048:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            flow = cls(**{k: data[k] for k in ("state", "nonce", "code_verifier", "next_path")})
        except (ValueError, TypeError, KeyError):
            return None
        if not all(isinstance(v, str) and v for v in asdict(flow).values()):
            return None
        return flow


def code_challenge(verifier: str) -> str:
    """PKCE S256: base64url(SHA-256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def authorization_url(endpoint: str, client_id: str, redirect_uri: str, flow: SignInFlow) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": "openid",
             "state": flow.state, "nonce": flow.nonce, "code_challenge": flow.code_challenge,
             "code_challenge_method": "S256"}
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"


def callback_matches(flow: SignInFlow | None, state: str | None) -> bool:
    return flow is not None and state is not None and secrets.compare_digest(flow.state, state)
