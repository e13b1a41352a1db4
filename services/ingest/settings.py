"""The FHIR ingest's settings: ``FLK_INGEST_*`` (plus the platform's ``FLK_*``)."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flk.settings import PlatformSettings


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLK_INGEST_", extra="ignore")

    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    source: str = "urn:flk:ingest"  # CloudEvents source of the visit events it publishes

    http_host: str = "127.0.0.1"
    http_port: int = Field(8084, ge=0, le=65535)  # FLK_INGEST_HTTP_PORT (deploy/prometheus scrapes 8084)
    pool_size: int = Field(10, ge=2, le=200)
    # a 1 000-entry Bundle of Encounters is ~1.5 MB; larger bodies get 413 before they are read
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    max_bundle_entries: int = Field(1000, ge=1, le=10000)
    # nesting deeper than this is refused (400) before any JSON parser recurses into it
    max_json_depth: int = Field(32, ge=8, le=200)

    relay_batch: int = Field(1000, ge=1)
    relay_interval_s: float = Field(0.5, gt=0)

    def http_platform(self) -> PlatformSettings:
        """The platform settings with this API's request limits (bundles are larger than commands)."""
        return self.platform.model_copy(update={"http_max_body_bytes": self.max_body_bytes,
                                                "http_max_json_depth": self.max_json_depth})
