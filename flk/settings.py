"""Settings every service shares (Kafka, PostgreSQL, tokens, pseudonymisation).

Each service has one settings object of its own that holds a `PlatformSettings`; all are
pydantic-settings models that fail fast at start-up on a missing or malformed value.
Environment variables: ``FLK_KAFKA_BOOTSTRAP``, ``FLK_KAFKA_SECURITY_PROTOCOL``,
``FLK_KAFKA_SASL_*``, ``FLK_KAFKA_SSL_*``, ``FLK_DATABASE_URL``, ``FLK_JWT_*``,
``FLK_PSEUDONYM_KEY``, ``FLK_IDENTITY_VAULT_KEY``, ``FLK_OIDC_*`` (the region's identity provider,
docs/identity-provider.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flk.events.connection import KafkaConnection
from flk.local_endpoints import LocalEndpoints

#: Local-development secrets. `flk` refuses them when FLK_ENVIRONMENT=production.
DEV_JWT_SECRET = "flk-local-development-jwt-secret-not-for-production"
DEV_PSEUDONYM_KEY = "flk-local-development-pseudonymisation-key"
DEV_VAULT_KEY = "ZmxrLWxvY2FsLWRldmVsb3BtZW50LXZhdWx0LWtleSE="  # base64 of 32 bytes


def _local_database_url() -> str:
    return LocalEndpoints().dsn("app")


def _local_kafka() -> str:
    return LocalEndpoints().kafka_bootstrap


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    kafka_bootstrap: str = Field(default_factory=_local_kafka)
    # plaintext suits the local broker on loopback; a managed cluster wants TLS and/or SASL
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None  # unset: the system's trusted CAs
    kafka_ssl_certfile: Path | None = None  # mutual TLS, with kafka_ssl_keyfile
    kafka_ssl_keyfile: Path | None = None
    database_url: SecretStr = Field(default_factory=lambda: SecretStr(_local_database_url()))
    topic_prefix: str = ""  # tests isolate themselves with a unique prefix
    # a region's overrides of the registry's retention, by topic name (JSON), e.g.
    # {"<topic name>": 5184000000} keeps that topic 60 days (docs/configuration.md)
    topic_retention_ms: dict[str, int] = Field(default_factory=dict)

    jwt_issuer: str = "https://login.flk.local"
    jwt_audience: str = "flk"
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_verify_key: SecretStr = SecretStr(DEV_JWT_SECRET)  # HS: the secret; RS/ES: the public key PEM
    jwt_signing_key: SecretStr | None = None  # only `flk token issue` signs; defaults to the verify key for HS
    jwt_leeway_s: int = 30

    # The region's identity provider (OIDC): unset, only the local tokens above are accepted. Set,
    # tokens whose `iss` is this issuer are verified against its JWKS (discovery, RS256/ES256) and
    # their claims mapped to a role and HSA unit ids; the local tokens stay valid beside them.
    oidc_issuer: str | None = None  # e.g. https://idp.region.se/realms/flk (no trailing slash)
    oidc_audience: str = "flk-services"  # the `aud` every provider token for these services must carry
    oidc_algorithms: list[Literal["RS256", "ES256"]] = Field(default_factory=lambda: ["RS256", "ES256"])
    oidc_subject_claim: str = "sub"  # who the audit log names (e.g. an HSA person id claim)
    oidc_roles_claim: str = "realm_access.roles"  # dotted path to a string or a list of strings
    oidc_units_claim: str = "hsa_unit_ids"  # dotted path to the HSA-ids of the caller's care units
    # the provider's role names -> this project's roles; the first listed that the token holds wins
    oidc_role_map: dict[str, str] = Field(default_factory=lambda: {
        "flk-listing-admin": "listing_admin", "flk-verksamhetschef": "verksamhetschef",
        "flk-clinician": "clinician", "flk-analyst": "analyst", "flk-service": "service"})
    oidc_jwks_cache_s: float = Field(300.0, ge=0)  # how long a fetched key set is trusted
    oidc_jwks_min_refetch_s: float = Field(10.0, ge=0)  # unknown `kid`s refetch at most this often
    oidc_http_timeout_s: float = Field(5.0, gt=0)

    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    identity_vault_key: SecretStr = SecretStr(DEV_VAULT_KEY)

    # every HTTP API: larger request bodies get 413, deeper-nested JSON bodies 400 (flk/request_limits.py)
    http_max_body_bytes: int = Field(256 * 1024, ge=1024)
    http_max_json_depth: int = Field(32, ge=2, le=500)

    def kafka_connection(self) -> KafkaConnection:
        """How this service's Kafka clients connect (flk/events/connection.py)."""
        return KafkaConnection(
            protocol=self.kafka_security_protocol, sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None,
            ssl_cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
            ssl_certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
            ssl_keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
        )

    def model_post_init(self, _context: object) -> None:
        self.kafka_connection()  # fail fast on an incomplete TLS/SASL setting
        if self.oidc_issuer is not None:
            from flk.security.oidc import check_oidc_settings

            check_oidc_settings(self)
        if self.environment == "production":
            for name, value, dev in (
                ("FLK_JWT_VERIFY_KEY", self.jwt_verify_key, DEV_JWT_SECRET),
                ("FLK_PSEUDONYM_KEY", self.pseudonym_key, DEV_PSEUDONYM_KEY),
                ("FLK_IDENTITY_VAULT_KEY", self.identity_vault_key, DEV_VAULT_KEY),
            ):
                if value.get_secret_value() == dev:
                    raise ValueError(f"{name} must be set in production (the development default is public)")
