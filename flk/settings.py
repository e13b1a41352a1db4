"""Settings every service shares (Kafka, PostgreSQL, tokens, pseudonymisation).

Each service has one settings object of its own that holds a `PlatformSettings`; all are
pydantic-settings models that fail fast at start-up on a missing or malformed value.
Environment variables: ``FLK_KAFKA_BOOTSTRAP``, ``FLK_DATABASE_URL``, ``FLK_JWT_*``,
``FLK_PSEUDONYM_KEY``, ``FLK_IDENTITY_VAULT_KEY``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flk.infra.settings import InfraSettings

#: Local-development secrets. `flk` refuses them when FLK_ENVIRONMENT=production.
DEV_JWT_SECRET = "flk-local-development-jwt-secret-not-for-production"
DEV_PSEUDONYM_KEY = "flk-local-development-pseudonymisation-key"
DEV_VAULT_KEY = "ZmxrLWxvY2FsLWRldmVsb3BtZW50LXZhdWx0LWtleSE="  # base64 of 32 bytes


def _local_database_url() -> str:
    return InfraSettings().dsn("app")


def _local_kafka() -> str:
    return InfraSettings().kafka_bootstrap


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    kafka_bootstrap: str = Field(default_factory=_local_kafka)
    database_url: SecretStr = Field(default_factory=lambda: SecretStr(_local_database_url()))
    topic_prefix: str = ""  # tests isolate themselves with a unique prefix

    jwt_issuer: str = "https://login.flk.local"
    jwt_audience: str = "flk"
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_verify_key: SecretStr = SecretStr(DEV_JWT_SECRET)  # HS: the secret; RS/ES: the public key PEM
    jwt_signing_key: SecretStr | None = None  # only `flk token issue` signs; defaults to the verify key for HS
    jwt_leeway_s: int = 30

    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    identity_vault_key: SecretStr = SecretStr(DEV_VAULT_KEY)

    def model_post_init(self, _context: object) -> None:
        if self.environment == "production":
            for name, value, dev in (
                ("FLK_JWT_VERIFY_KEY", self.jwt_verify_key, DEV_JWT_SECRET),
                ("FLK_PSEUDONYM_KEY", self.pseudonym_key, DEV_PSEUDONYM_KEY),
                ("FLK_IDENTITY_VAULT_KEY", self.identity_vault_key, DEV_VAULT_KEY),
            ):
                if value.get_secret_value() == dev:
                    raise ValueError(f"{name} must be set in production (the development default is public)")
