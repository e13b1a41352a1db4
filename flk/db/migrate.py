"""A small migration runner: plain SQL files, versioned, applied in order, recorded in a table.

Each component owns a folder of files named ``NNNN_what_it_does.sql``. The caller names the
components, in apply order (:data:`PLATFORM` first, then a service's own): a service applies
the platform's and its own; the composition root (`tools.migrations`) assembles them all. Each
file is applied in its own transaction together with its row in ``public.flk_schema_migrations``.
An applied file must never change: a different checksum stops the run with an error.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

#: component -> package whose ``migrations/`` folder holds its SQL files; the platform's own
PLATFORM: dict[str, str] = {"platform": "flk.db"}

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_ID = 0x666C6B  # pg_advisory_lock key: one runner at a time

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS public.flk_schema_migrations (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.component}/{self.version:04d}_{self.name}"


def discover(components: dict[str, str]) -> list[Migration]:
    found: list[Migration] = []
    for component, package in components.items():
        folder = resources.files(package) / "migrations"
        if not folder.is_dir():
            continue
        versions: set[int] = set()
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            match = FILE_PATTERN.match(entry.name)
            if match is None:
                raise MigrationError(f"{component}: migration file name {entry.name!r} is not NNNN_name.sql")
            version = int(match.group(1))
            if version in versions:
                raise MigrationError(f"{component}: two migrations with version {version:04d}")
            versions.add(version)
            found.append(Migration(component, version, match.group(2), entry.read_text(encoding="utf-8")))
    return found


async def migrate(dsn: str, components: dict[str, str]) -> list[Migration]:
    """Apply the pending migrations; return the ones applied (empty when up to date)."""
    import asyncpg

    migrations = discover(components)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_ID)
        try:
            await conn.execute(LEDGER_DDL)
            rows = await conn.fetch("SELECT component, version, checksum FROM public.flk_schema_migrations")
            applied = {(r["component"], r["version"]): r["checksum"] for r in rows}
            done: list[Migration] = []
            for m in migrations:
                recorded = applied.get((m.component, m.version))
                if recorded is not None:
                    if recorded != m.checksum:
                        raise MigrationError(f"{m.label} was changed after it was applied; add a new migration instead")
                    continue
                async with conn.transaction():
                    try:
                        await conn.execute(m.sql)
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(f"{m.label} failed: {exc}") from exc
                    await conn.execute(
                        "INSERT INTO public.flk_schema_migrations (component, version, name, checksum) "
                        "VALUES ($1, $2, $3, $4)", m.component, m.version, m.name, m.checksum,
                    )
                done.append(m)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)
    finally:
        await conn.close()


def migrate_sync(dsn: str, components: dict[str, str]) -> list[Migration]:
    return asyncio.run(migrate(dsn, components))
