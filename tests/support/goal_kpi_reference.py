"""The goal-KPI functions as migrations 0002 and 0004 defined them (per person with correlated subqueries), kept
as ``listing.*_reference`` next to the set-based ones of 0008: the oracle of the equality test and the
"old" side of the benchmark.

They are read from the applied migration file itself, not copied: a migration never changes once
applied (flk/db/migrate.py checks its checksum), so this is exactly what ran before 0008.
"""
from __future__ import annotations

import re
from importlib import resources
from typing import Any

#: the functions recreated, in dependency order, with the migration that defined them last before 0008
FUNCTIONS = (("person_goal_status_on", "0004_sabo_main_care.sql"), ("goal_kpi_region_on", "0004_sabo_main_care.sql"),
             ("goal_kpi_unit_on", "0004_sabo_main_care.sql"), ("goal_kpi_list_on", "0004_sabo_main_care.sql"),
             ("record_goal_kpis", "0002_goal_kpis.sql"))


def reference_sql() -> str:
    """CREATE statements of the old functions, renamed ``listing.<name>_reference`` (and calling each
    other's reference)."""
    statements = []
    for name, migration in FUNCTIONS:
        text = (resources.files("services.listing") / "migrations" / migration).read_text(encoding="utf-8")
        match = re.search(rf"^CREATE FUNCTION listing\.{name}\(.*?\$\$;$", text, re.DOTALL | re.MULTILINE)
        if match is None:
            raise LookupError(f"{migration} defines no listing.{name}")
        statements.append(match.group(0))
    sql = "\n".join(statements)
    for name, _ in FUNCTIONS:
        sql = sql.replace(f"listing.{name}(", f"listing.{name}_reference(")
    return sql


async def create_reference_functions(conn: Any) -> None:
    await conn.execute(reference_sql())


def three_pass_snapshot_sql() -> str:
    """``listing.record_goal_kpis_three_pass``: the snapshot as 0002 stored it (one INSERT per level, each
    calling goal_kpi_*_on, which computes the per-person status again) over the current — 0008's
    set-based — functions: what 0010's one-pass snapshot replaced, for the benchmark's side-by-side."""
    text = (resources.files("services.listing") / "migrations" / "0002_goal_kpis.sql").read_text(encoding="utf-8")
    match = re.search(r"^CREATE FUNCTION listing\.record_goal_kpis\(.*?\$\$;$", text, re.DOTALL | re.MULTILINE)
    if match is None:
        raise LookupError("0002 defines no listing.record_goal_kpis")
    return match.group(0).replace("listing.record_goal_kpis(", "listing.record_goal_kpis_three_pass(", 1)
