"""The continuity service's one settings object (env prefix ``FLK_CONTINUITY_``).

The platform part (Kafka, database, tokens) is the shared :class:`PlatformSettings`
(``FLK_*``). Measure settings default to the SKR definition (18 months, >= 3 visits,
listing unit only); see ``services.continuity.domain.settings``.
"""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flk.settings import PlatformSettings
from services.continuity.domain.settings import ContinuitySettings, Scope


#: the serving replicas' consumer group (services/continuity/follower.py; docker-compose.yml's too)
SERVING_REPLICA_GROUP = "continuity.replicas"


class ContinuityServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLK_CONTINUITY_", extra="ignore")

    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    # the measure
    window_months: int = Field(18, ge=0)
    min_visits: int = Field(3, ge=0)
    scope: Scope = Scope.LISTING_UNIT
    doctor_professions: frozenset[str] = frozenset({"läkare"})
    total_professions: frozenset[str] | None = None  # None: all professions
    contact_types: frozenset[str] = frozenset({"besok", "telefon", "digital", "hembesok"})
    region_id: str = "19"  # län code of the region the aggregates are for

    # the clock: None = today in Europe/Stockholm; a date fixes "as of" (replays, tests)
    as_of: date | None = None
    #: a replay's clock (the main job's): the day is read from this file — an ISO date, or empty for the
    #: calendar's today — at start, at each timer check and at once on SIGUSR2; it overrides ``as_of``.
    #: The replay moves the worker's day forward between its snapshot dates without a restart.
    as_of_file: Path | None = None
    advance_interval_s: float = Field(60.0, gt=0)  # how often the timer checks whether the date moved

    # the stream
    group_id: str = "continuity"
    client_id: str = "flk-continuity"
    store: str = Field("rocksdb", pattern="^(memory|rocksdb)$")
    data_dir: Path = Path(".flk-data/continuity")
    #: records per batch: a replay coalesces more of a patient's visits per batch the larger it is, and pays
    #: a batch's transaction less often (20 000 -> 50 000: +11 % visit events/s in bench.py's replay, timed
    #: batch by batch; 100 000 gains nothing more: docs/benchmarks.md); a live stream's batches are small
    #: anyway. A batch's records are in memory at once: about 1 KB each with their headers
    batch_max_records: int = Field(50_000, ge=1)
    batch_timeout_ms: int = Field(50, ge=0)
    #: a fast stream's batches gathered (0: never): while the worker receives at least
    #: ``batch_linger_from_per_second`` records a second — a replay, not a live stream — a batch of fewer than
    #: ``batch_linger_below_records`` waits this long for what follows before it is processed. Each batch is
    #: a transaction per partition (and the broker's markers for it); a replay that the worker keeps up with
    #: otherwise comes in batches of a couple of hundred records (docs/benchmarks.md, "Eleventh round"). A
    #: backlog's polls (tens of thousands: what follows is already being fetched) are taken at once
    batch_linger_ms: int = Field(100, ge=0)
    batch_linger_from_per_second: int = Field(2_000, ge=1)
    batch_linger_below_records: int = Field(10_000, ge=1)
    #: the hot path's compiled twin (flk.native, ADR 0010) where it is built from the current source;
    #: false: the pure module (the same results; for comparing the two, or ruling the twin out)
    compiled_hot_path: bool = True
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 2_000
    # a batch's transaction (docs/adr/0008) that is neither committed nor aborted within this is aborted
    # by the broker (a worker that died mid-batch and whose partition nobody took over)
    transaction_timeout_ms: int = Field(60_000, ge=1_000)

    # a serving replica (services/continuity/follower.py): reads the worker's changelog in its own group
    # (e.g. continuity.replicas) and serves its partitions' patients; processes no input, writes nothing
    follow_changelog: bool = False

    # outputs
    api_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = 8082
    metrics_port: int | None = None  # a separate metrics port; None: the API serves /metrics (the default)
    snapshot_enabled: bool = True
    snapshot_interval_s: float = Field(300.0, gt=0)  # the day's snapshot row is rewritten this often
    # while the worker catches up (its consumer lags), the periodic snapshot waits up to this long
    # (None: 2 × the interval); a snapshot of a half-read backlog is rewritten anyway
    snapshot_max_defer_s: float | None = Field(None, gt=0)

    def measure(self) -> ContinuitySettings:
        return ContinuitySettings(
            window_months=self.window_months, min_visits=self.min_visits, scope=self.scope,
            doctor_professions=self.doctor_professions, total_professions=self.total_professions,
            contact_types=self.contact_types,
        )

    def today(self) -> date:
        """The day indices are computed as of: the replay clock's (``as_of_file``), else the pinned one, else
        the calendar's. A clock file that cannot be read or holds no date raises (OSError, ValueError)."""
        if self.as_of_file is not None:
            text = self.as_of_file.read_text(encoding="utf-8").strip()
            return date.fromisoformat(text) if text else self.calendar_today()
        return self.as_of or self.calendar_today()

    @staticmethod
    def calendar_today() -> date:
        """Today in Sweden, whatever day the worker is pinned to."""
        return datetime.now(ZoneInfo("Europe/Stockholm")).date()
