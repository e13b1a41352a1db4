"""Where the local Kafka broker and PostgreSQL listen, and as whom the services sign in.

These are the defaults every service falls back to when FLK_KAFKA_BOOTSTRAP / FLK_DATABASE_URL
are unset: the broker and database that `flk infra up` starts on loopback. The local
infrastructure's own settings (`tools.infra.settings.InfraSettings`) extend this class with
what only the starter needs (versions, state and cache folders), so the addresses are
written once. Environment variables have the prefix ``FLK_INFRA_`` (``FLK_INFRA_KAFKA_PORT``).
"""
from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalEndpoints(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLK_INFRA_", extra="ignore")

    kafka_host: str = "127.0.0.1"
    kafka_port: int = 19092

    postgres_host: str = "127.0.0.1"
    postgres_port: int = 15432
    postgres_database: str = "flk"
    postgres_admin_user: str = "flk_admin"
    postgres_admin_password: SecretStr = SecretStr("flk_admin_local")
    postgres_app_user: str = "flk_app"
    postgres_app_password: SecretStr = SecretStr("flk_app_local")
    postgres_readonly_user: str = "flk_readonly"
    postgres_readonly_password: SecretStr = SecretStr("flk_readonly_local")

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    def dsn(self, role: str = "app", database: str | None = None) -> str:
        user, password = {
            "app": (self.postgres_app_user, self.postgres_app_password),
            "readonly": (self.postgres_readonly_user, self.postgres_readonly_password),
            "admin": (self.postgres_admin_user, self.postgres_admin_password),
        }[role]
        db = database or self.postgres_database
        return (
            f"postgresql://{user}:{password.get_secret_value()}@{self.postgres_host}:"
            f"{self.postgres_port}/{db}"
        )
