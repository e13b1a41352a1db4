"""The notifier's settings: environment variables ``FLK_NOTIFIER_*`` (plus the platform's ``FLK_*``).

Fails fast at start-up on a malformed value (pydantic-settings). Secrets (the Teams webhook
URLs, the SMTP password) are never settings values in the database: the routing table names
a secret, and :mod:`services.notifier.adapters.secrets` resolves it.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flk.settings import PlatformSettings
from services.notifier.domain.care_gaps import CarePolicy
from services.notifier.domain.retry import RetryPolicy


class NotifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLK_NOTIFIER_", extra="ignore")

    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    # ---- who we are ---------------------------------------------------------------------
    source: str = "urn:flk:notifier"  # CloudEvents source of what we publish
    consumer_group: str = "notifier"
    consumer_concurrency: int = Field(16, ge=1, le=256)  # patients handled at once (each in order)
    consumer_batch_size: int = Field(500, ge=1, le=10_000)  # consumed events per detection transaction

    # ---- gap detection (the region's policy profile) --------------------------------------
    grace_days: int = Field(14, ge=0)
    # (whether a declined FLK stops alerts, F7, is the listing profile's f7_declined_suppresses_alerts,
    # carried by each decline event: not a setting here)
    rub_threshold: int = Field(4, ge=0, le=5)
    include_sabo: bool = True
    # a SÄBO resident recorded as getting their main care elsewhere is not in G3: no SÄBO alert by default
    include_sabo_main_care_elsewhere: bool = False
    timezone: str = "Europe/Stockholm"  # dates in events (started_on, ...) are local dates
    # RUB bands whose patients must have a fast vårdkontakt (empty: the region requires none) ->
    # fast-vårdkontakt care gaps. It is the region's listing profile that decides (True only for
    # kalmar, seed 004), and the `flk` command derives this value from the listing service's own
    # FLK_LISTING_PROFILE when it is not set (tools/regional_profile.py), refusing to start when
    # both are set and disagree: the notifier itself knows no listing rules. JSON, e.g. "[4, 5]".
    fast_vardkontakt_rub_bands: frozenset[int] = frozenset()

    # ---- worklist (served by this app at /units/{unit}/worklist; alerts link to it) ---------
    worklist_base_url: str = "http://127.0.0.1:8083"  # the public base URL of this app
    listing_api_base_url: str = "http://127.0.0.1:8081"  # the listing service (doctor lists, FLK commands)
    listing_timeout_s: float = 10.0
    worklist_cookie_secure: bool = False  # set behind HTTPS; cookies are Secure anyway on https requests
    worklist_assign_wait_s: float = Field(5.0, ge=0)  # after an accepted assignment, wait this long for the gap to resolve
    # sign-in through the region's identity provider (FLK_OIDC_ISSUER): the worklist's public client
    # (authorization code flow with PKCE); its redirect URI is <worklist_base_url>/login/oidc/callback
    worklist_oidc_client_id: str | None = None
    # the pasted-token form (development): unset, offered unless FLK_ENVIRONMENT=production
    worklist_token_login: bool | None = None

    # ---- email ----------------------------------------------------------------------------
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "vardluckor-noreply@flk.local"
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 10.0

    # ---- Teams ----------------------------------------------------------------------------
    teams_timeout_s: float = 10.0
    secrets_dir: Path | None = None  # a file per secret (e.g. a mounted Kubernetes secret)

    # ---- loops ----------------------------------------------------------------------------
    tick_interval_s: float = 30.0  # how often due grace periods are looked for
    relay_interval_s: float = 1.0  # outbox poll (the relay is also woken after each commit)
    plan_interval_s: float = 60.0  # sweep of every routed unit (digests, escalations, quiet hours)
    immediate_batch_window_s: float = 1.0  # new gaps within this window go in one immediate alert
    delivery_poll_s: float = 1.0
    delivery_lease_s: float = 120.0  # a claimed delivery is retried after this if the worker died
    delivery_concurrency: int = Field(16, ge=1)
    metrics_refresh_s: float = 15.0

    # ---- retention (adapters/retention.py) ----------------------------------------------------
    retention_days: int = Field(365, ge=0)  # per-patient data past this goes; 0: kept for ever
    retention_interval_s: float = Field(3600.0, gt=0)  # how often the purge runs

    # ---- retries ----------------------------------------------------------------------------
    retry_max_attempts: int = Field(10, ge=1)
    retry_base_s: float = 2.0
    retry_cap_s: float = 600.0
    retry_max_retry_after_s: float = 3600.0

    # ---- HTTP -------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 8083

    @field_validator("worklist_base_url", "listing_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("worklist_base_url and listing_api_base_url must be http(s) URLs")
        return value.rstrip("/")

    @field_validator("fast_vardkontakt_rub_bands")
    @classmethod
    def _rub_bands(cls, value: frozenset[int]) -> frozenset[int]:
        if not value <= frozenset(range(6)):
            raise ValueError("fast_vardkontakt_rub_bands holds RUB bands, 0 to 5")
        return value

    @property
    def care_policy(self) -> CarePolicy:
        """Gap detection's policy."""
        return CarePolicy(
            grace_days=self.grace_days,
            rub_threshold=self.rub_threshold,
            include_sabo=self.include_sabo,
            include_sabo_main_care_elsewhere=self.include_sabo_main_care_elsewhere,
            fast_vardkontakt_rub_bands=self.fast_vardkontakt_rub_bands,
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            base=timedelta(seconds=self.retry_base_s),
            cap=timedelta(seconds=self.retry_cap_s),
            max_retry_after=timedelta(seconds=self.retry_max_retry_after_s),
        )

    @property
    def worklist_sign_in_by_provider(self) -> bool:
        return self.worklist_oidc_client_id is not None and self.platform.oidc_issuer is not None

    @property
    def worklist_token_login_enabled(self) -> bool:
        if self.worklist_token_login is not None:
            return self.worklist_token_login
        return self.platform.environment != "production"

    def model_post_init(self, _context: object) -> None:
        if self.worklist_oidc_client_id is not None and self.platform.oidc_issuer is None:
            raise ValueError("FLK_NOTIFIER_WORKLIST_OIDC_CLIENT_ID needs FLK_OIDC_ISSUER (the provider to sign in at)")

    def worklist_url(self, unit_id: str) -> str:
        """The unit's worklist page (requires login)."""
        return f"{self.worklist_base_url}/units/{quote(unit_id, safe='')}/worklist"
