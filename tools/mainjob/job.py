"""The main job's machinery: the services as children, a simulated region replayed through them,
and the goal summary and report read back from what the services wrote.

The replay pauses at snapshot dates so that every past number is one the services produced
themselves when the region stood at that date:

1. the simulated visit history (18 months before the period, published at its start as
   `flk ehr import` would) and the period's first months are published; the history's start is
   recorded as the region's data coverage and the baseline is pinned;
2. at each snapshot date (the period's start + 3 months, every ``--snapshot-every`` months, and the
   baseline), once every consumer group has caught up, the continuity worker — whose day is the
   replay's clock (``FLK_CONTINUITY_AS_OF_FILE``, a file the job writes) — writes that day's snapshot
   (G2, G4 with their windows and intervals); the job then moves the clock to the next snapshot date
   (SIGUSR2: the worker recomputes every patient as of it before its next batch, no restart);
3. the clock is moved to today (the calendar's), the rest of the events are published, consumers
   catch up, the worker writes today's snapshot, the notifier plans and delivers its alerts; the
   listing service's goal KPIs (G1, G3) are stored for the first of each month, the baseline and
   today meanwhile (its own `listing.record_goal_kpis`, which the daily `flk listing kpi-snapshot`
   calls); then the figures are read (G1/G3 as stored for the baseline and today, G2/G4 from
   `continuity.goal_comparison(baseline)`) and the goal report is written (`flk report`).
   The listing service runs with P3's consent expiry sweep off during the replay (it works on
   today's date, which a fast-forwarded year is not); one pass of it runs after the replay, and the
   summary counts the period's guardian-consent requests by outcome.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from flk.collector import BatchCollector
from flk.events.connection import PLAINTEXT, KafkaConnection
from tools.mainjob.demo_sinks import MailCatcher, TeamsSink
from tools.mainjob.goals import (
    AlertFigures,
    Summary,
    count_dead_letters,
    g3_population_from,
    goals_from,
    local_today,
    read_alerts,
    read_continuity,
    read_coverage,
    read_guardian_consent,
    read_region_kpis_on,
    record_listing_kpi_days_at_once,
    shares_from,
)
from services.continuity.settings import SERVING_REPLICA_GROUP
from tools.mainjob.processes import ServiceFailed, ServiceProcess

log = logging.getLogger("flk.run")

TEAMS_SECRET_REF = "demo-teams"


@dataclass
class JobConfig:
    bootstrap: str
    database_url: str  # the application role
    state_dir: Path  # logs and the continuity worker's RocksDB tables
    preset: str = "small"
    seed: int = 42
    end_date: date = field(default_factory=date.today)
    baseline_date: date | None = None  # default: half-way through the simulated period
    limit_people: int | None = None
    topic_prefix: str = ""
    host: str = "127.0.0.1"
    listing_port: int = 8081
    continuity_port: int = 8082
    notifier_port: int = 8083
    ingest_port: int = 8084  # the FHIR gateway (flk ingest run)
    smtp_port: int = 1025
    teams_port: int = 8090
    demo_sinks: bool = True
    timeout_s: float = 900.0
    progress: bool = False
    #: the continuity worker's periodic snapshot (the dashboards' figures while the job runs); at each
    #: snapshot date the job asks for one at once (`_wait_for_snapshot`)
    snapshot_interval_s: float = 60.0
    snapshot_every_months: int = 3  # continuity snapshots at the period's start and every N months (0: baseline only)
    # a replayed year takes a minute: a listing command whose person never comes is answered
    # (rejected person_unknown) after seconds, not after the service's default day
    person_wait_s: float = 10.0
    kafka_connection: KafkaConnection = PLAINTEXT  # --external: TLS/SASL from FLK_KAFKA_* (the services read the same)
    # --replicas: processes per service (continuity, listing, notifier); unnamed ones run once. Replica k of a
    # service listens on its port + k * REPLICA_PORT_STEP (continuity's serving replicas: k + 1, see _continuity)
    replicas: dict[str, int] = field(default_factory=dict)
    # least privilege (`flk kafka acls`): the connection of each service and of each external writer the
    # simulator plays, by name ("listing", "ehr", ...); a name without one uses kafka_connection. The
    # job's own clients (topics, lag, dead-letter counts) keep kafka_connection: an operator's.
    principals: Mapping[str, KafkaConnection] = field(default_factory=dict)


SCALABLE = ("continuity", "listing", "notifier")
MAX_REPLICAS = 8
REPLICA_PORT_STEP = 100


def parse_replicas(text: str) -> dict[str, int]:
    """`--replicas 3` (every scalable service) or `--replicas continuity=3,listing=2,notifier=2` (the rest once)."""
    text = text.strip()
    if text.isdigit():
        counts = dict.fromkeys(SCALABLE, int(text))
    else:
        counts = dict.fromkeys(SCALABLE, 1)
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, number = part.partition("=")
            name = name.strip()
            if not sep or name not in SCALABLE or not number.strip().isdigit():
                raise ValueError(f"{part!r}: expected N or service=N with service one of {', '.join(SCALABLE)}")
            counts[name] = int(number)
    for name, n in counts.items():
        if not 1 <= n <= MAX_REPLICAS:
            raise ValueError(f"{name}={n}: between 1 and {MAX_REPLICAS} replicas")
    return counts


@dataclass(frozen=True)
class UnitInfo:
    care_unit_id: str
    name: str


def listing_available() -> bool:
    """`flk listing run` exists in this checkout (the listing service's process)."""
    import importlib.util

    try:
        return importlib.util.find_spec("services.listing.entrypoints.cli") is not None
    except ModuleNotFoundError:
        return False


class _Split:
    """Cuts one simulation stream at points in simulated time, without reading it twice."""

    def __init__(self, stream: Iterator, until_ts: int | None = None) -> None:
        self.stream = stream
        self.until_ts = until_ts
        self.held = None

    def upto(self, ts: int) -> Iterator:
        """The items before ``ts`` not yet taken; the first one at or after it is held for later."""
        if self.held is not None:
            if self.held.at >= ts:
                return
            yield self.held
            self.held = None
        for item in self.stream:
            if item.at >= ts:
                self.held = item
                return
            yield item

    def before(self) -> Iterator:
        yield from self.upto(self.until_ts)

    def after(self) -> Iterator:
        if self.held is not None:
            yield self.held
            self.held = None
        yield from self.stream


class MainJob:
    def __init__(self, config: JobConfig, echo: Callable[[str], None] = print) -> None:
        from tools.simulator.generate import Simulation

        self.c = config
        self.echo = echo
        self.sim = Simulation(config.preset, seed=config.seed, end_date=config.end_date,
                              limit_people=config.limit_people)
        months = self.sim.preset.months
        from flk.dates import add_months

        self.baseline = config.baseline_date or add_months(self.sim.start_date, months // 2)
        self.region_code = self.sim.areas[0].region_code
        self.region_name = self.sim.areas[0].region_name
        self.logs = config.state_dir / "logs"
        self.mail = MailCatcher(config.host, config.smtp_port) if config.demo_sinks else None
        self.teams = TeamsSink(config.host, config.teams_port) if config.demo_sinks else None
        self._http_client = None  # `_http`
        self._lag_reader = None  # `_lag_reader_open`
        self.collector = BatchCollector()
        self.services: dict[str, ServiceProcess] = {}
        self.units: list[UnitInfo] = []
        self.started_at = time.monotonic()
        self.with_listing = listing_available()
        self.run_started_at: datetime | None = None  # the database's clock: this run's alerts are those after it
        self.snapshot_dates = snapshot_dates(self.sim.start_date, self.sim.end_date, self.baseline,
                                             config.snapshot_every_months)
        from flk.security.vault import IdentityVault
        from flk.settings import PlatformSettings
        from tools.mainjob.identities import IdentityEdge

        # synthetic identities (test personnummer, names) into the vault, as a population register's edge would
        self.identity_edge = IdentityEdge(IdentityVault(PlatformSettings().identity_vault_key.get_secret_value()))

    # ------------------------------------------------------------------ the services

    def _platform_env(self, service: str) -> dict[str, str]:
        env = {"FLK_KAFKA_BOOTSTRAP": self.c.bootstrap, "FLK_DATABASE_URL": self.c.database_url,
               "FLK_TOPIC_PREFIX": self.c.topic_prefix}
        own = self.c.principals.get(service)
        if own is not None:  # the service's own principal (and nothing else: no TLS files here)
            env.update(FLK_KAFKA_SECURITY_PROTOCOL=own.protocol, FLK_KAFKA_SASL_MECHANISM=own.sasl_mechanism,
                       FLK_KAFKA_SASL_USERNAME=own.sasl_username or "", FLK_KAFKA_SASL_PASSWORD=own.sasl_password or "")
        return env

    def url(self, port: int, path: str = "") -> str:
        return f"http://{self.c.host}:{port}{path}"

    def replicas(self, service: str) -> int:
        return self.c.replicas.get(service, 1)

    def _replica(self, service: str, k: int, port: int) -> tuple[str, int, dict[str, str]]:
        """(process name, HTTP port, environment) of replica ``k``: the first keeps the service's own name and
        port; every replica has a stable name (static membership: FLK_REPLICA_NAME)."""
        name = service if k == 0 else f"{service}-{k}"
        return name, port + k * REPLICA_PORT_STEP, {"FLK_REPLICA_NAME": f"{service}-{k}"}

    def _listing(self, k: int = 0) -> ServiceProcess:
        # P3's expiry sweep is off during the replay (it runs on today's date: in a fast-forwarded year it
        # would expire requests whose second guardian's answer is still to come); _expire_consents runs
        # one pass of it at the end
        name, port, replica = self._replica("listing", k, self.c.listing_port)
        env = {**self._platform_env("listing"), **replica, "FLK_LISTING_HTTP_HOST": self.c.host, "FLK_LISTING_HTTP_PORT": str(port),
               "FLK_LISTING_PERSON_WAIT_S": str(self.c.person_wait_s), "FLK_LISTING_CONSENT_EXPIRY_INTERVAL_S": "0"}
        return ServiceProcess(name, ["listing", "run"], env, self.url(port, "/readyz"), self.logs)

    @property
    def continuity_clock(self) -> Path:
        """The replay's clock for the continuity processes (``FLK_CONTINUITY_AS_OF_FILE``): the day they
        compute as of, an ISO date (empty: the calendar's today); ``_move_continuity_to`` moves it."""
        return self.c.state_dir / "continuity-as-of"

    def _continuity_all(self) -> list[ServiceProcess]:
        """One worker (`continuity`: every partition, the region's snapshots, every patient's indices), and
        with --replicas continuity=N>1 beside it N serving replicas that split the partitions in their own
        group `continuity.replicas` (`continuity-0` … on the continuity port + 100·(k+1), each its own
        data directory): they follow the worker's changelog and serve what it committed, processing no
        input and writing nothing (services/continuity/follower.py)."""
        n = self.replicas("continuity")
        if n == 1:
            return [self._continuity()]
        return [self._continuity()] + [self._continuity(k) for k in range(n)]

    def _continuity(self, k: int | None = None) -> ServiceProcess:
        env = {**self._platform_env("continuity"),
               "FLK_CONTINUITY_HTTP_HOST": self.c.host,
               "FLK_CONTINUITY_METRICS_PORT": "0",  # the API serves /metrics
               "FLK_CONTINUITY_SNAPSHOT_INTERVAL_S": str(self.c.snapshot_interval_s),
               # no snapshot while the worker catches up with the replay: only the one after each settle counts
               "FLK_CONTINUITY_SNAPSHOT_MAX_DEFER_S": str(self.c.timeout_s),
               "FLK_CONTINUITY_REGION_ID": self.region_code,
               "FLK_CONTINUITY_AS_OF_FILE": str(self.continuity_clock)}
        if k is None:  # the region worker (the only one without --replicas)
            name, port, data = "continuity", self.c.continuity_port, self.c.state_dir / "continuity"
            env["FLK_REPLICA_NAME"] = "continuity"
        else:
            name, port = f"continuity-{k}", self.c.continuity_port + (k + 1) * REPLICA_PORT_STEP
            data = self.c.state_dir / name
            env |= {"FLK_REPLICA_NAME": name, "FLK_CONTINUITY_GROUP_ID": SERVING_REPLICA_GROUP,
                    "FLK_CONTINUITY_SNAPSHOT_ENABLED": "false", "FLK_CONTINUITY_FOLLOW_CHANGELOG": "true"}
        env["FLK_CONTINUITY_HTTP_PORT"] = str(port)
        args = ["continuity", "worker", "--store", "rocksdb", "--data-dir", str(data)]
        return ServiceProcess(name, args, env, self.url(port, "/healthz"), self.logs)

    def _notifier(self, k: int = 0) -> ServiceProcess:
        name, port, replica = self._replica("notifier", k, self.c.notifier_port)
        env = {**self._platform_env("notifier"), **replica,
               "FLK_NOTIFIER_HTTP_HOST": self.c.host, "FLK_NOTIFIER_HTTP_PORT": str(port),
               "FLK_NOTIFIER_SMTP_HOST": self.c.host, "FLK_NOTIFIER_SMTP_PORT": str(self.c.smtp_port),
               "FLK_NOTIFIER_SMTP_TLS": "none",
               "FLK_NOTIFIER_WORKLIST_BASE_URL": self.url(self.c.notifier_port),
               "FLK_NOTIFIER_LISTING_API_BASE_URL": self.url(self.c.listing_port),
               # demo pace: look for due grace periods and plan alerts every few seconds
               "FLK_NOTIFIER_TICK_INTERVAL_S": "2", "FLK_NOTIFIER_PLAN_INTERVAL_S": "2",
               "FLK_NOTIFIER_METRICS_REFRESH_S": "2"}
        if self.teams is not None:
            env["FLK_NOTIFIER_SECRET_" + TEAMS_SECRET_REF.upper().replace("-", "_")] = self.teams.url
        return ServiceProcess(name, ["notifier", "run", "--no-migrate"], env, self.url(port, "/readyz"), self.logs)

    def _ingest(self) -> ServiceProcess:
        env = {**self._platform_env("ingest"), "FLK_INGEST_HTTP_HOST": self.c.host, "FLK_INGEST_HTTP_PORT": str(self.c.ingest_port)}
        return ServiceProcess("ingest", ["ingest", "run", "--no-migrate"], env,
                              self.url(self.c.ingest_port, "/readyz"), self.logs)

    async def _start(self, service: ServiceProcess) -> None:
        self.services[service.name] = service
        await service.start()

    def check_services(self) -> None:
        for service in self.services.values():
            service.check_alive()

    def _http(self):
        """One HTTP client for the job's status polls (a client per poll built an SSL context each time:
        5 % of the main job's CPU in a replay)."""
        import httpx

        if self._http_client is None:
            self._http_client = httpx.AsyncClient(timeout=10.0)
        return self._http_client

    async def _lag_reader_open(self):
        """One reader of the consumer groups' lags for the job's polls (a reader per poll waited ~0.3 s
        for the topics' metadata each time: see ``flk.events.lag.LagReader``)."""
        from flk.events.lag import LagReader

        if self._lag_reader is None:
            self._lag_reader = await LagReader(self.c.bootstrap, self.c.kafka_connection).start()
        return self._lag_reader

    async def stop(self) -> None:
        client, self._http_client = self._http_client, None
        if client is not None:
            await client.aclose()
        reader, self._lag_reader = self._lag_reader, None
        if reader is not None:
            await reader.close()
        for kind in ("ingest", "listing", "notifier", "continuity"):
            for name, service in list(self.services.items()):
                if name == kind or name.startswith(kind + "-"):
                    await service.stop()
        if self.teams is not None:
            await self.teams.stop()
        if self.mail is not None:
            self.mail.stop()

    # ------------------------------------------------------------------ the run

    async def run(self) -> Summary:
        from tools.migrations import migrate
        from flk.events.admin import ensure_topics

        c = self.c
        await ensure_topics(c.bootstrap, prefix=c.topic_prefix, connection=c.kafka_connection)
        await migrate(c.database_url)
        self.run_started_at = await self._read(lambda conn: conn.fetchval("SELECT now()"))
        await self._read(self._record_coverage_and_baseline)
        if self.mail is not None:
            self.mail.start()
        if self.teams is not None:
            await self.teams.start()
        self.units = self._scan_units()
        await self._set_routing()

        if self.with_listing:
            for k in range(self.replicas("listing")):
                await self._start(self._listing(k))
        else:
            self.echo("note: `flk listing run` is not in this checkout yet: listing commands stay unprocessed, "
                      "G1/G3 and care gaps will be n/a")
        for k in range(self.replicas("notifier")):
            await self._start(self._notifier(k))
        await self._start(self._ingest())
        self._set_continuity_clock(self.snapshot_dates[0])
        for service in self._continuity_all():
            await self._start(service)
        for service in self.services.values():
            await service.wait_ready()

        # The replay stops at each snapshot date (the baseline among them) with the continuity worker as
        # of that date, so the goal figures have a history (a worker that runs for real writes one a day).
        split = _Split(iter(self.sim.stream()))
        sent, previous = 0, self.sim.start_date
        for k, day in enumerate(self.snapshot_dates):
            if k:
                self._move_continuity_to(day)
            what = "up to the baseline" if day == self.baseline else "up to a snapshot date"
            history = (f"the visit history from {self.sim.history_start}, then "
                       if k == 0 and self.sim.settings.history_months else "")
            self.echo(f"replaying {history}{previous} – {day} ({what}) …")
            sent += await self._publish(split.upto(_midnight_ts(day)))
            await self._settle(f"{'baseline' if day == self.baseline else 'snapshot date'} {day}")
            await self._check_continuity_day(day)
            await self._wait_for_snapshot(day)
            previous = day

        self.echo(f"moving the continuity worker to today; replaying {previous} – {c.end_date} …")
        self._move_continuity_to(None)
        sent += await self._publish(split.after())
        await self._settle("the end of the period")
        await self._check_continuity_day(None)
        expired = await self._expire_consents() if self.with_listing else 0
        if expired:
            self.echo(f"the consent expiry sweep expired {expired:,} minors' listing request(s) nobody consented to")
        # The register is complete: every fact and command is handled and the sweep was its last writer.
        # Its goal KPIs are stored (PostgreSQL's work, on the machine's cores) while the services take the
        # sweep's events, the continuity worker writes today's snapshot and the notifier its alerts.
        days = sorted(set(_monthly(self.sim.start_date, local_today()) + [self.baseline]))
        kpis = asyncio.create_task(record_listing_kpi_days_at_once(
            self.c.database_url, days, connections=min(4, max(2, os.cpu_count() or 2))))
        try:
            if expired:
                await self._settle("the consent expiry sweep")
            await self._wait_for_snapshot(local_today())
            await self._wait_for_alerts()
            stored = await kpis
        finally:
            if not kpis.done():
                kpis.cancel()
                await asyncio.gather(kpis, return_exceptions=True)
        self.echo(f"{sent:,} simulated events processed; listing goal KPIs stored for {len(days)} days "
                  f"({stored} rows) for the dashboards' time series")
        summary, report_path = await asyncio.gather(self.summary(), self._write_report())
        return dataclasses.replace(summary, report_path=report_path)

    async def _write_report(self) -> str | None:
        """The goal report (`flk report`) of this run's region, into the run's state directory."""
        from tools.report import find_chromium, write_goal_report

        pdf = find_chromium() is not None
        try:
            paths = await write_goal_report(self.c.database_url, self.region_code, self.c.state_dir / "reports",
                                            baseline=self.baseline, as_of=local_today(), pdf=pdf,
                                            region_name=f"Region {self.region_name} (simulated, preset {self.c.preset})")
        except Exception as exc:  # noqa: BLE001 - the summary stands without the report; say why
            self.echo(f"the goal report could not be written: {exc}")
            return None
        return f"{paths.html}" + (f" (PDF: {paths.pdf})" if paths.pdf else " (no PDF: Chromium is not installed)")

    async def summary(self) -> Summary:
        # independent reads, each on a connection of its own, at once
        baseline_kpis, now_kpis, continuity, alerts, consent, dead = await asyncio.gather(
            self._read(lambda conn: read_region_kpis_on(conn, self.region_code, self.baseline)),
            self._read(lambda conn: read_region_kpis_on(conn, self.region_code, local_today())),
            self._read(lambda conn: read_continuity(conn, self.region_code, self.baseline)),
            self._read(lambda conn: read_alerts(conn, since=self.run_started_at)),
            self._read(lambda conn: read_guardian_consent(conn, self.sim.start_date, local_today())),
            count_dead_letters(self.c.bootstrap, self.c.topic_prefix, self.c.kafka_connection))
        baseline_shares, now_shares = shares_from(baseline_kpis), shares_from(now_kpis)
        g3_population = g3_population_from(now_kpis)
        months = next((r["window_months"] for r in continuity.values() if r.get("window_months")), None)
        coverage = await self._read(lambda conn: read_coverage(conn, self.region_code, months))
        if self.mail is not None or self.teams is not None:
            alerts = AlertFigures(alerts.gaps_open, alerts.gaps_opened, alerts.alerts_planned, alerts.delivered,
                                  alerts.failed, alerts.pending,
                                  self.mail.received if self.mail else None,
                                  self.teams.received if self.teams else None)
        return Summary(f"Region {self.region_name}", self.c.preset, (self.sim.start_date, self.sim.end_date),
                       self.baseline, goals_from(baseline_shares, now_shares, continuity), alerts, dead,
                       time.monotonic() - self.started_at, coverage, g3_population=g3_population,
                       guardian_consent=consent)

    # ------------------------------------------------------------------ steps

    async def _record_coverage_and_baseline(self, conn) -> None:
        """What a region's onboarding records: from when its visit data are complete (the simulated
        history's start, as `flk ehr import` records an extract's) and the baseline of G2/G4."""
        from services.continuity.adapters.coverage import clear_coverage, pin_baseline, record_coverage

        months = self.sim.settings.history_months
        if months:
            await record_coverage(conn, self.region_code, self.sim.history_start, source="simulator",
                                  note=f"preset {self.c.preset}: {months} months of visit history")
        else:  # no history: nobody knows that the data are complete
            await clear_coverage(conn, self.region_code)
        await pin_baseline(conn, self.region_code, self.baseline, note=f"flk run --preset {self.c.preset}")

    async def _expire_consents(self) -> int:
        """P3: one pass of the listing service's expiry sweep as of today, once the replay is over (the
        service runs with it off, see ``_listing``): the service's own handler, in this process; the
        service's relay publishes the rejections. Returns how many requests expired."""
        from services.listing.bootstrap import build_deps
        from services.listing.service_layer.handlers import expire_consents
        from services.listing.settings import ListingSettings

        pool = await _pool(self.c.database_url)
        try:
            deps = build_deps(ListingSettings(), pool)
            total = 0
            while True:
                expired = await expire_consents(deps, limit=500)
                total += expired
                if expired < 500:
                    return total
        finally:
            await pool.close()

    def _set_continuity_clock(self, day: date | None) -> None:
        """The replay's clock (``continuity_clock``) to ``day`` (None: the calendar's today), written whole:
        a process reading it meanwhile sees the old day or the new one."""
        self.continuity_clock.parent.mkdir(parents=True, exist_ok=True)
        partial = self.continuity_clock.with_suffix(".partial")
        partial.write_text(day.isoformat() if day is not None else "", encoding="utf-8")
        partial.replace(self.continuity_clock)

    def _move_continuity_to(self, day: date | None) -> None:
        """Every continuity process to ``day`` (None: the calendar's today) without a restart: the clock is
        moved and SIGUSR2 has each look at it now. The next events can be published at once: the worker
        takes the look before its next batch and recomputes every patient as of the new day first (the
        snapshot of the day before is written by then: ``_wait_for_snapshot``). Once the events are
        handled, ``_check_continuity_day`` checks that each process is at that day."""
        self._set_continuity_clock(day)
        for service in self._continuity_processes():
            service.send_signal(signal.SIGUSR2)

    def _continuity_processes(self) -> list[ServiceProcess]:
        return [s for n, s in self.services.items() if n == "continuity" or n.startswith("continuity-")]

    async def _check_continuity_day(self, day: date | None) -> None:
        """Every continuity process computes as of ``day`` (None: the calendar's today), as its `/status`
        says; else the job fails here, naming the process (a clock it did not read would give the wrong
        day's figures)."""
        import httpx

        expected = (day or local_today()).isoformat()
        for service in self._continuity_processes():
            url = service.ready_url.rsplit("/", 1)[0] + "/status"
            try:
                body = (await self._http().get(url, timeout=10.0)).json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ServiceFailed(f"{service.name} did not answer {url}: {exc}") from exc
            if body.get("as_of") != expected:
                raise ServiceFailed(f"{service.name} computes as of {body.get('as_of')}, not {expected} "
                                    f"(the replay clock {self.continuity_clock}); see {service.log_file}")

    def _scan_units(self) -> list[UnitInfo]:
        """The simulated units, from the head of a second pass over the (deterministic) stream."""
        from tools.simulator.generate import Simulation

        units = []
        head = Simulation(self.c.preset, seed=self.c.seed, end_date=self.c.end_date, limit_people=self.c.limit_people)
        for item in head.stream():
            if item.event_type == "sim.unit":
                units.append(UnitInfo(item.data["care_unit_id"], item.data["name"]))
            elif item.event_type not in ("sim.list", "care_unit.contracted.v1"):
                break
        return units

    async def _set_routing(self) -> None:
        """Every simulated unit is alerted at once (no quiet hours) by email, and by Teams in the demo."""
        from services.notifier.service_layer.routing import build_routing, set_routing

        pool = await _pool(self.c.database_url)
        try:
            for unit in self.units:
                local = unit.care_unit_id.split("-")[-1].lower()
                routing = build_routing(
                    unit.care_unit_id, unit.name, email_to=[f"{local}@vardcentral.example"],
                    teams_webhook_secret_ref=TEAMS_SECRET_REF if self.teams is not None else None,
                    mode="immediate", quiet_hours="none", escalation_after_days=None)
                await set_routing(pool, routing, "flk run", datetime.now(timezone.utc))
        finally:
            await pool.close()

    async def _publish(self, items: Iterator) -> int:
        """Publish month by month; in each month the facts and the visits first, then the commands.

        The listing service reads facts (population register, roster, ACG, SÄBO, unit register)
        and commands with separate consumers. Fast-forwarded, a listing request would otherwise
        overtake the registration of its person and be rejected as `person_unknown` — something
        that cannot happen when the same events arrive over a year. So each month's facts are
        published and consumed before its commands (a fact later in the month than a command is
        then applied before it: a small, documented distortion of the simulated order). The visits,
        which the listing service does not read, go right after the facts: the continuity worker
        works on them while the listing service reads the facts.
        """
        from tools.simulator.sinks import Progress

        bar = Progress(self.sim, enabled=self.c.progress)
        sent = 0
        months = monthly_chunks(items)
        facts_sent = False  # in this month, so far
        while True:
            # a piece of a month simulated and published is a batch: the cyclic collector runs after it, not
            # over the simulated region while it is made (flk.collector)
            with self.collector.batch():
                piece = next(months, None)
                if piece is None:
                    break
                facts, visits, commands = piece
                sent += await self._publish_chunk(facts + visits, bar)
                facts_sent = facts_sent or bool(facts)
                if commands is None:
                    continue  # the month goes on
                if facts_sent and self.with_listing:
                    await self._wait_for_group("listing.facts")
                facts_sent = False
                sent += await self._publish_chunk(commands, bar)
        bar.done()
        return sent

    async def _publish_chunk(self, items: list, bar) -> int:
        from tools.simulator.sinks import publish

        if not items:
            return 0
        await self._read(lambda conn: self.identity_edge.seal(conn, items))  # the register's edge: ids to the vault
        task = asyncio.create_task(publish(self.sim, self.c.bootstrap, self.c.topic_prefix, items=iter(items),
                                           progress=bar, connection=self.c.kafka_connection,
                                           writers=self.c.principals))
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            if not task.done():
                self.check_services()
        return task.result()

    async def _wait_for_group(self, name: str) -> None:
        """Until the group `<prefix><name>` has consumed everything published so far."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.c.timeout_s
        group = self.c.topic_prefix + name
        while loop.time() < deadline:
            lags = await (await self._lag_reader_open()).lags([group])
            if lags and lags[0].partitions > 0 and lags[0].lag == 0:
                return
            self.check_services()
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{group} still behind after {self.c.timeout_s:.0f}s")

    def _service_names(self) -> list[str]:
        return ["continuity", "notifier"] + (["listing"] if self.with_listing else [])

    async def _groups(self) -> list[str]:
        """The services' consumer groups under our prefix: `<name>` or `<name>.<part>` (listing has two)."""
        p = self.c.topic_prefix
        listed = await (await self._lag_reader_open()).groups(p)
        return sorted(g for g in listed if any(
            g[len(p):] == n or g[len(p):].startswith(n + ".") for n in self._service_names()))

    async def _settle(self, what: str, settle_checks: int = 3, interval_s: float = 0.25) -> None:
        """Until every service's consumer groups have committed offsets, lag 0 and nothing waits in an
        outbox or for its person (parked listing commands), at ``settle_checks`` checks in a row
        ``interval_s`` apart (the lags and the outboxes are read one after the other: an event relayed
        between the two reads shows as lag at the next check)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.c.timeout_s
        quiet = 0
        last = ""
        p = self.c.topic_prefix
        while loop.time() < deadline:
            self.check_services()
            groups = await self._groups()
            lags = await (await self._lag_reader_open()).lags(groups) if groups else []
            outbox = await self._backlog_total()
            present = {n for n in self._service_names()
                       if any(g.partitions > 0 and (g.group[len(p):] == n or g.group[len(p):].startswith(n + "."))
                              for g in lags)}
            caught_up = present == set(self._service_names()) and all(g.lag == 0 for g in lags) and outbox == 0
            quiet = quiet + 1 if caught_up else 0
            last = ", ".join(f"{g.group[len(p):]} {g.lag:,}" + ("" if g.partitions else " (no offsets yet)")
                             for g in lags) + f"; outbox and parked {outbox}"
            missing = set(self._service_names()) - present
            if missing:
                last += f"; no committed offsets yet: {', '.join(sorted(missing))}"
            if quiet >= settle_checks:
                self.echo(f"caught up at {what} (lag: {last})")
                return
            await asyncio.sleep(interval_s)
        raise TimeoutError(f"consumers still behind after {self.c.timeout_s:.0f}s: {last}")

    async def _wait_for_snapshot(self, day: date) -> None:
        """The continuity worker's snapshot of `day`, asked for (SIGUSR1) and written after the consumers
        caught up. Between these the worker writes one at most every `snapshot_interval_s`, and only when
        it has caught up: rewriting every patient's row every few seconds of a replay cost more than the
        snapshots the job waits for (docs/benchmarks.md)."""
        pool = await _pool(self.c.database_url)
        try:
            since = await pool.fetchval("SELECT now()")
            if "continuity" in self.services:  # the region worker (serving replicas write no snapshot)
                self.services["continuity"].send_signal(signal.SIGUSR1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(120.0, 3 * self.c.snapshot_interval_s)  # (asked for at once)
            while loop.time() < deadline:
                self.check_services()
                written = await pool.fetchval(
                    "SELECT max(computed_at) FROM continuity.aggregate_snapshot "
                    "WHERE snapshot_date = $1 AND level = 'region'", day)
                if written is not None and written > since:
                    return
                known = await self._continuity_known_until()
                if known is not None and min(known, local_today()) > day:
                    # a re-run: the topics (and the worker's state) already hold this period's later
                    # facts, so the worker does not rewrite the snapshot of `day` from them
                    if written is not None and self.run_started_at is not None and written < self.run_started_at:
                        self.echo(f"  keeping the snapshot of {day} from an earlier run (the worker's state "
                                  f"already holds facts dated up to {known}; --fresh recomputes it)")
                        return
                    # none, or one this run wrote while it was still catching up: never a figure to keep
                    raise ServiceFailed(f"no snapshot of {day} can be written: the continuity worker's state "
                                        f"already holds facts dated up to {known} (run with --fresh)")
                await asyncio.sleep(0.25)
        finally:
            await pool.close()
        raise ServiceFailed(f"the continuity worker wrote no snapshot for {day}; see {self.logs / 'continuity.log'}")

    async def _continuity_known_until(self) -> date | None:
        import httpx

        try:
            body = (await self._http().get(self.url(self.c.continuity_port, "/status"), timeout=5.0)).json()
        except (httpx.HTTPError, ValueError):
            return None
        return date.fromisoformat(body["known_until"]) if body.get("known_until") else None

    async def _wait_for_alerts(self, timeout_s: float = 60.0) -> None:
        """Until every open gap of a routed unit is in a planned alert and no delivery is pending
        (the notifier's `/readyz` backlog)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        quiet = 0
        while loop.time() < deadline:
            self.check_services()
            backlog = await self._backlog(self.c.notifier_port, "notifier")
            waiting = backlog["gaps_unannounced"] + backlog["deliveries_pending"]
            quiet = quiet + 1 if waiting == 0 else 0
            if quiet >= 3:
                return
            await asyncio.sleep(1.0)
        self.echo("note: some alerts were still being planned or delivered when the summary was read")

    async def _backlog(self, port: int, service: str) -> dict[str, int]:
        """A service's work accepted and not yet done, as its `/readyz` reports it. A service that
        does not answer, or answers without a backlog, fails the job: never a silent zero."""
        import httpx

        try:
            response = await self._http().get(self.url(port, "/readyz"))
            body = response.json()
            backlog = body["backlog"]
            return {str(k): int(v) for k, v in backlog.items()}
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ServiceFailed(f"the {service} service reported no backlog at /readyz ({type(exc).__name__}); "
                                f"see {self.logs / (service + '.log')}") from None

    async def _backlog_total(self) -> int:
        """Events not yet published and listing commands still waiting for their person, from the
        listing's, the notifier's and the FHIR ingest's `/readyz`."""
        notifier = await self._backlog(self.c.notifier_port, "notifier")
        total = notifier["outbox"]
        if self.with_listing:
            listing = await self._backlog(self.c.listing_port, "listing")
            total += listing["outbox"] + listing["parked_commands"]
        total += (await self._backlog(self.c.ingest_port, "ingest"))["outbox"]  # visits from the FHIR gateway
        return total

    async def _read(self, body):
        import asyncpg

        conn = await asyncpg.connect(self.c.database_url)
        try:
            return await body(conn)
        finally:
            await conn.close()


async def _pool(dsn: str):
    import asyncpg

    return await asyncpg.create_pool(dsn, min_size=1, max_size=2)


@functools.cache
def _topic_events(event_type: str) -> frozenset[str]:
    """Every event type on ``event_type``'s registry topic."""
    from flk.events.registry import registry

    return frozenset(registry().topic_for(event_type).events)


def _part_of_month(event_type: str) -> int:
    """0: a register fact the listing service needs before commands about the same people (every
    contract event but the listing commands and the EHR's visits); 1: a visit; 2: anything else."""
    if event_type in _topic_events("visit.recorded.v1"):
        return 1
    if event_type in _topic_events("listing.request.v1") or event_type.startswith("sim."):
        return 2
    return 0


#: a month's facts and visits go out in pieces of about this many items while the month is simulated
#: (the opening month holds the whole population and its visit history: ~35 s of simulation at region
#: size, which the services would otherwise wait for with nothing to do)
PIECE = 50_000


def monthly_chunks(items: Iterator, piece: int = PIECE):
    """(facts, visits, commands) per calendar month of simulated time, each in stream order. A month's
    facts and visits come in pieces of about ``piece`` items as they are made, with ``commands`` None but
    in the month's last piece: the commands (everything else) wait for the month's end."""
    facts: list = []
    visits: list = []
    rest: list = []
    parts = (facts, visits, rest)
    month = None
    for item in items:
        at = datetime.fromtimestamp(item.at, tz=timezone.utc)
        key = (at.year, at.month)
        if month is not None and key != month and (facts or visits or rest):
            yield facts, visits, rest
            facts, visits, rest = parts = ([], [], [])
        elif len(facts) + len(visits) >= piece:
            yield facts, visits, None
            facts, visits = [], []
            parts = (facts, visits, rest)
        month = key
        parts[_part_of_month(item.event_type)].append(item)
    if facts or visits or rest:
        yield facts, visits, rest


def _monthly(start: date, end: date) -> list[date]:
    """The first of every month from `start`'s month to `end`, and `end` itself."""
    days, day = [], date(start.year, start.month, 1)
    while day < end:
        if day >= start:
            days.append(day)
        day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return days + [end]


def snapshot_dates(start: date, end: date, baseline: date, every_months: int) -> list[date]:
    """The dates before ``end`` at which the replay pauses for a continuity snapshot: every
    ``every_months`` after the period's start (the opening is published at its first instant), and
    the baseline; ascending."""
    from flk.dates import add_months

    days = {baseline}
    if every_months > 0:
        k = 1
        while (day := add_months(start, k * every_months)) < end:
            days.add(day)
            k += 1
    return sorted(d for d in days if d < end)


def _midnight_ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def where_to_look(job: MainJob, prometheus_url: str | None, alertmanager_url: str | None = None) -> str:
    c = job.c
    lines = ["Where to look:"]
    if job.with_listing:
        lines.append(f"  listing API docs      {job.url(c.listing_port, '/docs')}   metrics {job.url(c.listing_port, '/metrics')}")
    lines.append(f"  continuity API docs   {job.url(c.continuity_port, '/docs')}   metrics {job.url(c.continuity_port, '/metrics')}")
    lines.append(f"  notifier API docs     {job.url(c.notifier_port, '/docs')}   metrics {job.url(c.notifier_port, '/metrics')}")
    others = [f"{name} {job.services[name].ready_url.rsplit('/', 1)[0]}" for name in sorted(job.services)
              if "-" in name]
    if others:
        lines.append(f"  more replicas         {', '.join(others)}"
                     + ("  (continuity-k: each serves its partitions' patients, 404 for the others)"
                        if job.replicas("continuity") > 1 else ""))
    lines.append(f"  FHIR ingest           {job.url(c.ingest_port, '/fhir')} (POST a Bundle; docs/fhir-ingest.md has a "
                 f"curl example)   metrics {job.url(c.ingest_port, '/metrics')}")
    if job.units:
        unit = job.units[0].care_unit_id
        lines.append(f"  worklist              {job.url(c.notifier_port, f'/units/{unit}/worklist')}  (one page per unit; "
                     f"log in at {job.url(c.notifier_port, '/login')} with a token from "
                     f"`flk token issue --role clinician --unit {unit} --subject <your HSA-id>`)")
    if prometheus_url:
        lines.append(f"  Prometheus            {prometheus_url}")
    if alertmanager_url:
        ops = [f"{job.mail.operations_address} at the mail catcher"] if job.mail is not None else []
        ops += [job.teams.operations_url] if job.teams is not None else []
        lines.append(f"  Alertmanager          {alertmanager_url}  (operations alerts, docs/operations.md"
                     + (f"; to {' and '.join(ops)}" if ops else "") + ")")
    if job.mail is not None:
        lines.append(f"  demo mail catcher     smtp://{c.host}:{c.smtp_port} (messages counted below)")
    lines.append(f"  service logs          {job.logs}")
    lines.append("  Grafana dashboards    deploy/grafana/ (docker compose up grafana; uids flk-region-goals, "
                 "flk-care-unit, flk-operations)")
    return "\n".join(lines)
