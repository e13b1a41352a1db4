"""The worklist's sign-in at the identity provider: PKCE and the flow cookie (pure)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from services.notifier.domain.sign_in import SignInFlow, authorization_url, callback_matches, code_challenge


def test_the_code_challenge_is_rfc_7636s_s256_of_the_verifier():
    # RFC 7636, appendix B
    assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_new_flow_has_fresh_secrets_and_a_verifier_of_allowed_length():
    one, two = SignInFlow.new("/"), SignInFlow.new("/")
    assert len({one.state, one.nonce, one.code_verifier, two.state, two.nonce, two.code_verifier}) == 6
    assert 43 <= len(one.code_verifier) <= 128


def test_the_authorization_url_asks_for_a_code_with_the_s256_challenge_state_and_nonce():
    flow = SignInFlow.new("/units/X/worklist")
    url = authorization_url("https://idp.example/realms/flk/protocol/openid-connect/auth", "flk-worklist",
                            "https://vard.example/login/oidc/callback", flow)

    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query == {"response_type": "code", "client_id": "flk-worklist", "scope": "openid",
                     "redirect_uri": "https://vard.example/login/oidc/callback", "state": flow.state,
                     "nonce": flow.nonce, "code_challenge": flow.code_challenge, "code_challenge_method": "S256"}
    assert flow.code_verifier not in url


def test_the_flow_survives_its_cookie_and_only_its_own_state_matches():
    flow = SignInFlow.new("/units/X/worklist")
    back = SignInFlow.from_cookie(flow.to_cookie())

    assert back == flow
    assert callback_matches(back, flow.state)
    assert not callback_matches(back, SignInFlow.new("/").state)
    assert not callback_matches(None, flow.state)
    assert not callback_matches(back, None)


@pytest.mark.parametrize("cookie", [None, "", "not base64 json!", "e30", "eyJzdGF0ZSI6IDF9", "A" * 3000])
def test_a_missing_or_malformed_flow_cookie_is_no_flow(cookie):
    assert SignInFlow.from_cookie(cookie) is None
