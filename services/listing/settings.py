"""The listing service's settings: ``FLK_LISTING_*`` (plus the platform's ``FLK_*``).

pydantic-settings, failing fast at start-up: an unknown policy profile or a malformed RUB
weight table stops the process before it touches Kafka or PostgreSQL.
"""
from __future__ import annotations

from datetime import date

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flk.settings import PlatformSettings
from services.listing.domain.policy import known_profile

#: Project choice (the sources give no weights): relative workload of a patient per RUB band,
#: used for the RUB-weighted list load. A patient without an assessment weighs 1.0.
DEFAULT_RUB_WEIGHTS: dict[int, float] = {0: 0.3, 1: 0.5, 2: 0.8, 3: 1.0, 4: 2.0, 5: 3.5}


class ListingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLK_LISTING_", extra="ignore")

    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    # the region's policy profile (domain/policy.py): national, vastmanland, kronoberg, kalmar
    profile: str = "national"
    source: str = "urn:flk:listing"  # CloudEvents source of what we publish
    timezone: str = "Europe/Stockholm"  # a command without effective_date takes requested_at's local date

    # ---- API --------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = Field(8081, ge=0, le=65535)  # FLK_LISTING_HTTP_PORT (deploy/prometheus scrapes 8081)
    api_pool_size: int = Field(10, ge=1, le=200)  # the API's own pool (the workers use pool_size)

    # ---- consumers and relay ----------------------------------------------------------------
    consumer_group: str = "listing"
    consumer_concurrency: int = Field(16, ge=1, le=256)  # distinct patients handled at once (facts)
    command_chunk_size: int = Field(500, ge=1, le=5000)  # commands per transaction (1: one per transaction)
    fact_chunk_size: int = Field(500, ge=1, le=5000)  # register facts per transaction (1: one per transaction)
    pool_size: int = Field(20, ge=2, le=200)
    relay_batch: int = Field(1000, ge=1)
    relay_interval_s: float = Field(0.5, gt=0)
    relay_batch_window_s: float = Field(0.02, ge=0)  # after a wake-up, wait this long to batch decisions
    # a Kafka command whose person the register does not know yet waits this long for the person's
    # registration (adapters/parking.py), then is rejected person_unknown; 0: rejected at once
    person_wait_s: float = Field(86400, ge=0)
    parked_release_interval_s: float = Field(1.0, gt=0)  # how often parked commands are looked at
    conflict_retries: int = Field(5, ge=1, le=50)  # serialisation / constraint conflicts retried per message

    # ---- P3: a minor's listing request waiting for the other guardian's consent -------------------
    # how often the sweep looks for pending requests whose wait (the profile's p3_consent_wait_days) is
    # over and rejects them guardian_consent_expired; 0: off (a consent after the wait still expires it)
    consent_expiry_interval_s: float = Field(3600, ge=0)

    # ---- goal KPI snapshots (G1, G3) ----------------------------------------------------------
    kpi_snapshot_interval_s: float = Field(3600, ge=0)  # how often finished days are checked; 0: off
    kpi_catch_up_days: int = Field(31, ge=1, le=366)  # missed finished days stored after a downtime

    # ---- read side --------------------------------------------------------------------------
    rub_weights: dict[int, float] = Field(default_factory=lambda: dict(DEFAULT_RUB_WEIGHTS))
    rub_unknown_weight: float = 1.0

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        return known_profile(value)

    @field_validator("rub_weights")
    @classmethod
    def _bands(cls, value: dict[int, float]) -> dict[int, float]:
        if set(value) != set(range(6)) or any(w < 0 for w in value.values()):
            raise ValueError("rub_weights must give a non-negative weight for each RUB band 0..5")
        return value

    def today(self) -> date:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        return datetime.now(ZoneInfo(self.timezone)).date()
