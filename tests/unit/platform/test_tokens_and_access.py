"""Bearer tokens and the pure access rules."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest

from flk.security.access import may_read_patient, may_read_unit, may_read_unit_patients
from flk.security.tokens import InvalidToken, Principal, Role, issue_token, verify_token
from flk.settings import PlatformSettings
from tests.support.builders import UNIT_A, UNIT_B, a_patient_key


@pytest.fixture
def settings() -> PlatformSettings:
    return PlatformSettings(jwt_verify_key="unit-test-secret-of-sufficient-length-123456")


def test_issued_token_verifies_to_its_principal(settings):
    token = issue_token(settings, "SE2321000016-U001", Role.CLINICIAN, [UNIT_A])
    assert verify_token(settings, token) == Principal("SE2321000016-U001", Role.CLINICIAN, frozenset({UNIT_A}))


def test_expired_token_is_refused(settings):
    token = issue_token(settings, "u", Role.CLINICIAN, [UNIT_A], now=datetime.now(timezone.utc) - timedelta(days=1),
                        ttl=timedelta(hours=1))
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(settings, token)


def test_token_signed_with_another_key_is_refused(settings):
    other = PlatformSettings(jwt_verify_key="another-secret-of-sufficient-length-1234567")
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(settings, issue_token(other, "u", Role.CLINICIAN, [UNIT_A]))


def test_unsigned_token_is_refused(settings):
    now = int(datetime.now(timezone.utc).timestamp())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "u", "iat": now, "exp": now + 60,
              "role": "listing_admin", "units": []}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(InvalidToken):
        verify_token(settings, unsigned)


def test_token_from_another_issuer_is_refused(settings):
    foreign = PlatformSettings(jwt_verify_key=settings.jwt_verify_key, jwt_issuer="https://evil.example")
    with pytest.raises(InvalidToken):
        verify_token(settings, issue_token(foreign, "u", Role.CLINICIAN, [UNIT_A]))


def test_patient_token_must_name_its_patient(settings):
    with pytest.raises(InvalidToken, match="patient_key"):
        verify_token(settings, issue_token(settings, "p", Role.PATIENT))


def test_production_refuses_the_public_development_secrets():
    with pytest.raises(ValueError, match="FLK_JWT_VERIFY_KEY"):
        PlatformSettings(environment="production")


PATIENT = a_patient_key(1)
clinician_a = Principal("u", Role.CLINICIAN, frozenset({UNIT_A}))
chef_b = Principal("c", Role.VERKSAMHETSCHEF, frozenset({UNIT_B}))
admin = Principal("adm", Role.LISTING_ADMIN, frozenset())
analyst = Principal("an", Role.ANALYST, frozenset())
patient = Principal("p", Role.PATIENT, frozenset(), patient_key=PATIENT)


@pytest.mark.parametrize(("principal", "listing_unit", "allowed"), [
    (clinician_a, UNIT_A, True),
    (clinician_a, UNIT_B, False),
    (clinician_a, None, False),
    (chef_b, UNIT_A, False),
    (admin, UNIT_B, True),
    (analyst, UNIT_A, False),
    (patient, UNIT_A, True),
])
def test_unit_staff_read_only_their_own_units_patients(principal, listing_unit, allowed):
    assert may_read_patient(principal, PATIENT, listing_unit) is allowed


def test_a_patient_reads_only_themselves():
    assert not may_read_patient(patient, a_patient_key(2), UNIT_A)


def test_analysts_read_unit_aggregates_but_never_a_units_patients():
    assert may_read_unit(analyst, UNIT_A)
    assert not may_read_unit_patients(analyst, UNIT_A)
    assert not may_read_unit(clinician_a, UNIT_B)
    assert may_read_unit_patients(clinician_a, UNIT_A)


def _rsa_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_rs256_tokens_verify_with_the_public_key_and_another_keys_tokens_are_refused():
    private, public = _rsa_pair()
    other_private, _ = _rsa_pair()
    verifier = PlatformSettings(jwt_algorithm="RS256", jwt_verify_key=public)
    issuer = PlatformSettings(jwt_algorithm="RS256", jwt_verify_key=public, jwt_signing_key=private)
    impostor = PlatformSettings(jwt_algorithm="RS256", jwt_verify_key=public, jwt_signing_key=other_private)

    token = issue_token(issuer, "SE2321000016-U001", Role.CLINICIAN, [UNIT_A])
    assert verify_token(verifier, token) == Principal("SE2321000016-U001", Role.CLINICIAN, frozenset({UNIT_A}))
    assert verify_token(verifier, token) == verify_token(verifier, token)  # the parsed key is reused
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(verifier, issue_token(impostor, "u", Role.CLINICIAN, [UNIT_A]))


def test_an_hs256_token_signed_with_the_public_key_is_refused_by_an_rs256_verifier():
    _, public = _rsa_pair()
    verifier = PlatformSettings(jwt_algorithm="RS256", jwt_verify_key=public)
    now = int(datetime.now(timezone.utc).timestamp())
    claims = {"iss": verifier.jwt_issuer, "aud": verifier.jwt_audience, "sub": "u", "iat": now, "exp": now + 60,
              "role": "listing_admin", "units": []}
    import hmac  # the classic algorithm confusion: the public key used as an HMAC secret
    import json
    from base64 import urlsafe_b64encode

    def b64(raw: bytes) -> bytes:
        return urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    forged = signing_input + b"." + b64(hmac.new(public.encode(), signing_input, "sha256").digest())
    with pytest.raises(InvalidToken):
        verify_token(verifier, forged.decode())


def test_a_rotated_verify_key_takes_effect_at_once(settings):
    token = issue_token(settings, "u", Role.CLINICIAN, [UNIT_A])
    assert verify_token(settings, token).subject == "u"
    rotated = PlatformSettings(jwt_verify_key="a-rotated-secret-of-sufficient-length-98765")
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(rotated, token)
