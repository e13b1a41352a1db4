"""Identity-provider tokens: the claim mapping (pure), the settings' checks, and the verifier's key
handling with the provider's two documents served by a stand-in (the real provider: the
integration tests against Keycloak)."""
from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flk.security.oidc import OidcVerifier, claim_at, principal_from_claims
from flk.security.tokens import InvalidToken, Principal, Role, verify_token
from flk.settings import DEV_JWT_SECRET, PlatformSettings
from tests.support.builders import UNIT_A, UNIT_B

ISSUER = "https://idp.region.example/realms/flk"
MAPPING = dict(subject_claim="sub", roles_claim="realm_access.roles", units_claim="hsa_unit_ids",
               role_map={"flk-verksamhetschef": "verksamhetschef", "flk-clinician": "clinician"})


def test_claims_map_to_the_first_mapped_role_the_token_holds_and_its_units():
    claims = {"sub": "SE2321000016-P001", "realm_access": {"roles": ["offline_access", "flk-clinician",
                                                                     "flk-verksamhetschef"]},
              "hsa_unit_ids": [UNIT_A, UNIT_B]}

    assert principal_from_claims(claims, **MAPPING) == Principal(
        "SE2321000016-P001", Role.VERKSAMHETSCHEF, frozenset({UNIT_A, UNIT_B}))


def test_a_single_unit_may_be_a_plain_string_claim():
    claims = {"sub": "p", "realm_access": {"roles": ["flk-clinician"]}, "hsa_unit_ids": UNIT_A}
    assert principal_from_claims(claims, **MAPPING).units == frozenset({UNIT_A})


@pytest.mark.parametrize("claims, reason", [
    ({"sub": "p", "realm_access": {"roles": ["offline_access"]}, "hsa_unit_ids": [UNIT_A]}, "no role"),
    ({"sub": "p", "hsa_unit_ids": [UNIT_A]}, "no role"),
    ({"sub": "p", "realm_access": {"roles": ["flk-clinician"]}, "hsa_unit_ids": [1, 2]}, "units claim"),
    ({"sub": "p", "realm_access": {"roles": "flk-clinician"}, "hsa_unit_ids": {"a": 1}}, "units claim"),
    ({"realm_access": {"roles": ["flk-clinician"]}, "hsa_unit_ids": [UNIT_A]}, "no sub claim"),
])
def test_claims_without_a_mapped_role_or_with_malformed_units_are_refused(claims, reason):
    with pytest.raises(InvalidToken, match=reason):
        principal_from_claims(claims, **MAPPING)


def test_a_dotted_claim_path_also_finds_a_namespaced_key_holding_dots():
    assert claim_at({"https://region.se/roles": ["x"]}, "https://region.se/roles") == ["x"]
    assert claim_at({"a": {"b": {"c": 1}}}, "a.b.c") == 1
    assert claim_at({"a": {"b": 1}}, "a.x") is None


@pytest.mark.parametrize("overrides, message", [
    ({"oidc_issuer": ISSUER + "/"}, "trailing slash"),
    ({"oidc_issuer": "idp.region.example"}, "issuer URL"),
    ({"oidc_issuer": "http://idp.region.example", "environment": "production", "jwt_verify_key": "x" * 40,
      "pseudonym_key": "y" * 40, "identity_vault_key": "ZmxrLXByb2R1Y3Rpb24ta2V5LW9mLTMyLWJ5dGVzISE="}, "https"),
    ({"oidc_issuer": ISSUER, "oidc_role_map": {"flk-patient": "patient"}}, "not a staff role"),
    ({"oidc_issuer": ISSUER, "oidc_role_map": {"x": "superuser"}}, "not a staff role"),
])
def test_settings_that_could_never_verify_a_provider_token_fail_at_start_up(overrides, message):
    with pytest.raises(ValueError, match=message):
        PlatformSettings(**overrides)


class StandInProvider(OidcVerifier):
    """The provider's discovery document and key set, from keys held here; counts the fetches."""

    def __init__(self, settings: PlatformSettings, keys: dict[str, Any]) -> None:
        super().__init__(settings)
        self.published = keys  # kid -> private key
        self.fetches: list[str] = []

    def _get_json(self, url: str) -> Any:
        self.fetches.append(url.rsplit("/", 1)[-1])
        if url.endswith("openid-configuration"):
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/protocol/openid-connect/certs"}
        jwks = []
        for kid, private in self.published.items():
            algorithm = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
            alg = jwt.get_algorithm_by_name(algorithm)
            jwks.append(alg.to_jwk(private.public_key(), as_dict=True) | {"kid": kid, "alg": algorithm, "use": "sig"})
        return {"keys": jwks}


def provider_token(private: Any, kid: str, **claims: Any) -> str:
    now = int(time.time())
    algorithm = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
    body = {"iss": ISSUER, "aud": "flk-services", "sub": "p", "iat": now, "exp": now + 300,
            "realm_access": {"roles": ["flk-clinician"]}, "hsa_unit_ids": [UNIT_A]} | claims
    return jwt.encode(body, private, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
def settings() -> PlatformSettings:
    return PlatformSettings(oidc_issuer=ISSUER, oidc_jwks_min_refetch_s=60)


def test_rs256_and_es256_tokens_verify_against_the_published_keys(settings):
    rsa_key, ec_key = rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())
    verifier = StandInProvider(settings, {"r1": rsa_key, "e1": ec_key})

    assert verifier.verify(provider_token(rsa_key, "r1")).units == frozenset({UNIT_A})
    assert verifier.verify(provider_token(ec_key, "e1")).role is Role.CLINICIAN
    assert verifier.fetches == ["openid-configuration", "certs"], "discovery once, the key set cached"


def test_an_unknown_key_id_refetches_the_key_set_at_most_once_per_interval(settings):
    old, new = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
    verifier = StandInProvider(settings, {"old": old})
    verifier.verify(provider_token(old, "old"))
    verifier.published = {"new": new}  # rotated at the provider
    verifier._fetched_at -= 61  # the minimum interval since the last fetch has passed

    assert verifier.verify(provider_token(new, "new")).subject == "p"
    fetches = len(verifier.fetches)
    with pytest.raises(InvalidToken, match="does not publish"):
        verifier.verify(provider_token(new, "made-up"))
    assert len(verifier.fetches) == fetches, "a made-up kid within the interval fetches nothing"


def test_a_token_for_the_provider_signed_with_the_local_secret_is_refused_without_a_fetch(settings):
    verifier = StandInProvider(settings, {})
    forged = jwt.encode({"iss": ISSUER, "aud": "flk-services", "sub": "p", "iat": int(time.time()),
                         "exp": int(time.time()) + 60, "realm_access": {"roles": ["flk-clinician"]}},
                        DEV_JWT_SECRET, algorithm="HS256", headers={"kid": "x"})

    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(forged)
    with pytest.raises(InvalidToken, match="algorithm"):
        verify_token(settings, forged)
    assert verifier.fetches == []


def test_a_token_naming_another_issuer_is_left_to_the_local_verifier(settings):
    stranger = rsa.generate_private_key(65537, 2048)
    token = provider_token(stranger, "k", iss="https://elsewhere.example/realms/flk")

    with pytest.raises(InvalidToken, match="not valid"):  # the local HS256 verifier refuses an RS256 token
        verify_token(settings, token)
