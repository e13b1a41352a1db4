"""`flk infra prune`: delete what tests, benchmarks and `flk run --fresh` left on the local infrastructure.

Each of them isolates itself under a topic prefix and a database of its own. Normally they clean
up; a killed run does not. Left behind, topics pile up: a broker holding ~13 000 partitions needed
90 s to start. Only the local broker and database that `flk infra up` runs are touched, and only
names that cannot be the region's own: registry topics without a prefix, Kafka's internal topics
and the main database always stay.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flk.events.registry import TopicRegistry

# databases created per test, benchmark run, reliability deployment and `flk run --fresh`
THROWAWAY_DATABASE_PREFIXES = ("flk_test_", "flk_bench_", "flk_rel_", "flk_run_")
DELETE_BATCH = 200  # topics per DeleteTopics request


def region_topics(reg: TopicRegistry) -> frozenset[str]:
    """The registry's topics and their dead-letter twins (a changelog has none), unprefixed."""
    return frozenset(name for spec in reg.topics for name in spec.names)


def stale_topics(names: Iterable[str], reg: TopicRegistry, keep_runs: tuple[str, ...] = ()) -> list[str]:
    """Topics that are neither the region's (unprefixed registry topics), Kafka's own (``__*``) nor
    those of a `flk run --fresh` to keep (prefix ``run<id>.``)."""
    own = region_topics(reg)
    kept = tuple(f"run{run_id}." for run_id in keep_runs)
    return sorted(name for name in names
                  if name not in own and not name.startswith("__") and not name.startswith(kept))


def stale_databases(names: Iterable[str], main_database: str, keep_runs: tuple[str, ...] = ()) -> list[str]:
    kept = {f"flk_run_{run_id}" for run_id in keep_runs}
    return sorted(name for name in names
                  if name != main_database and name not in kept and name.startswith(THROWAWAY_DATABASE_PREFIXES))


@dataclass(frozen=True)
class PruneResult:
    topics: list[str]
    databases: list[str]


async def find_left_overs(settings, reg: TopicRegistry, keep_runs: tuple[str, ...] = ()) -> PruneResult:
    """What `prune` would delete on the local broker and database."""
    import asyncpg
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        topics = stale_topics(await admin.list_topics(), reg, keep_runs)
    finally:
        await admin.close()
    conn = await asyncpg.connect(settings.dsn("admin", database="postgres"))
    try:
        names = [row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")]
    finally:
        await conn.close()
    return PruneResult(topics=topics, databases=stale_databases(names, settings.postgres_database, keep_runs))


async def delete_left_overs(settings, found: PruneResult) -> None:
    import asyncpg
    from aiokafka.admin import AIOKafkaAdminClient

    if found.topics:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=60_000)
        await admin.start()
        try:
            for start in range(0, len(found.topics), DELETE_BATCH):
                await admin.delete_topics(found.topics[start:start + DELETE_BATCH], timeout_ms=60_000)
        finally:
            await admin.close()
    if found.databases:
        conn = await asyncpg.connect(settings.dsn("admin", database="postgres"))
        try:
            for name in found.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def prune(settings, reg: TopicRegistry, dry_run: bool = False, keep_runs: tuple[str, ...] = ()) -> PruneResult:
    found = await find_left_overs(settings, reg, keep_runs)
    if not dry_run:
        await delete_left_overs(settings, found)
    return found


class Throwaway:
    """A topic prefix and databases of one's own on the local infrastructure, deleted on exit, also
    after an error or Ctrl-C (benchmarks use it; a killed process still leaves them to `prune`).

        async with Throwaway(settings, "bench") as mine:
            await ensure_topics(bootstrap, prefix=mine.prefix)
            dsn = await mine.database()
    """

    def __init__(self, settings, stem: str) -> None:
        import uuid

        if f"{stem}_" not in {p.removeprefix("flk_") for p in THROWAWAY_DATABASE_PREFIXES}:
            raise ValueError(f"stem {stem!r}: its databases would not be recognised as left-overs")
        self.settings = settings
        self.stem = stem
        self.prefix = f"{stem}{uuid.uuid4().hex[:8]}."
        self.databases: list[str] = []

    async def database(self) -> str:
        """A new empty database owned by the app role; its DSN."""
        import uuid

        from tools.infra.postgres import create_app_database

        name = f"flk_{self.stem}_{uuid.uuid4().hex[:10]}"
        self.databases.append(name)  # before it exists: dropped on exit whatever happens
        return await create_app_database(self.settings, name)

    async def __aenter__(self) -> "Throwaway":
        return self

    async def __aexit__(self, *exc_info) -> None:
        from flk.events.admin import delete_topics_with_prefix

        await delete_topics_with_prefix(self.settings.kafka_bootstrap, self.prefix)
        await delete_left_overs(self.settings, PruneResult(topics=[], databases=self.databases))
