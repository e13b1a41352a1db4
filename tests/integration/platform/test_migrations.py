"""The migration runner against a real, empty PostgreSQL database."""
from __future__ import annotations

import asyncpg
import pytest

from flk.db.migrate import MigrationError
from tools.migrations import discover, migrate


async def test_migrations_apply_in_order_to_an_empty_database(fresh_database):
    applied = await migrate(fresh_database)

    expected = discover()
    assert [m.label for m in applied] == [m.label for m in expected]
    conn = await asyncpg.connect(fresh_database)
    try:
        rows = await conn.fetch("SELECT component, version FROM public.flk_schema_migrations ORDER BY applied_at, component, version")
        assert [(r["component"], r["version"]) for r in rows] == [(m.component, m.version) for m in expected]
        assert await conn.fetchval("SELECT to_regclass('platform.audit_log') IS NOT NULL")
    finally:
        await conn.close()


async def test_second_migration_run_is_a_no_op(fresh_database):
    await migrate(fresh_database)
    conn = await asyncpg.connect(fresh_database)
    try:
        before = await conn.fetchval("SELECT count(*) FROM public.flk_schema_migrations")
    finally:
        await conn.close()

    assert await migrate(fresh_database) == []

    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM public.flk_schema_migrations") == before
    finally:
        await conn.close()


async def test_a_changed_applied_migration_stops_the_run(fresh_database):
    await migrate(fresh_database)
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute("UPDATE public.flk_schema_migrations SET checksum = 'tampered' WHERE component = 'platform'")
    finally:
        await conn.close()

    with pytest.raises(MigrationError, match="was changed after it was applied"):
        await migrate(fresh_database)


async def test_audit_log_is_append_only(migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        await conn.execute(
            "INSERT INTO platform.audit_log (actor, actor_role, action, outcome) VALUES ('x', 'clinician', 'a', 'allowed')"
        )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM platform.audit_log")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE platform.audit_log SET actor = 'y'")
    finally:
        await conn.close()


async def test_open_flk_assignments_are_vacuumed_after_a_few_per_cent_of_change(migrated_database):
    """Listing 0011: the lists' sizes are counted from the visibility map's all-visible pages, which only
    VACUUM sets; the table is vacuumed after 2 % of its rows were added or changed, not 20 %."""
    conn = await asyncpg.connect(migrated_database)
    try:
        options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'listing.flk_assignment'::regclass")
    finally:
        await conn.close()
    assert set(options) == {"autovacuum_vacuum_insert_scale_factor=0.02", "autovacuum_vacuum_scale_factor=0.02"}
