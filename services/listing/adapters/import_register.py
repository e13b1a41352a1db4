"""The import's SQL: the register's reference data loaded once (units, lists, roles, counters), and a
stand-in connection that batches the repository's statements into one ``executemany`` each."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from services.listing.adapters.repository import ListingRepository
from services.listing.adapters.rows import list_from_row, role_from_row
from services.listing.domain.import_check import (
    ImportReference,
    doctors_by_unit,
)
from services.listing.domain.model import (
    DoctorList,
    ListKind,
)


@dataclass
class Register:
    """Reference data of the register, loaded once: units, lists, roles, counters."""

    units: dict[str, Any]
    lists: dict[str, DoctorList]
    roles: dict[str, Any]
    list_sizes: dict[str, int]
    listed: dict[str, int]
    fictive_by_unit: dict[str, str]

    @classmethod
    async def load(cls, conn: Any, lock: bool) -> Register:
        repo = ListingRepository(conn)
        unit_ids = [r["hsa_id"] for r in await conn.fetch("SELECT hsa_id FROM listing.care_unit")]
        units = await repo.load_units(unit_ids)
        if lock:  # L7 counts and F8 role ends must not move under the import
            await conn.execute("SELECT 1 FROM listing.care_unit u WHERE EXISTS (SELECT 1 FROM listing.listing_limit l "
                               "WHERE l.care_unit_id = u.hsa_id) ORDER BY hsa_id FOR UPDATE")
            await conn.execute("SELECT 1 FROM listing.practitioner_role ORDER BY role_id FOR SHARE")
        roles = {r["role_id"]: role_from_row(r) for r in await conn.fetch("SELECT * FROM listing.practitioner_role")}
        lists = {r["list_id"]: list_from_row(r) for r in await conn.fetch(
            "SELECT * FROM listing.doctor_list ORDER BY list_id")}
        sizes = {r["list_id"]: r["n"] for r in await conn.fetch(
            "SELECT list_id, count(*) AS n FROM listing.flk_assignment WHERE end_on IS NULL GROUP BY list_id")}
        listed = {r["care_unit_id"]: r["n"] for r in await conn.fetch(
            "SELECT care_unit_id, count(*) AS n FROM listing.listing WHERE end_on IS NULL GROUP BY care_unit_id")}
        fictive: dict[str, str] = {}
        for lst in lists.values():
            if lst.kind is ListKind.FICTIVE:
                fictive.setdefault(lst.care_unit_id, lst.list_id)
        return cls(units, lists, roles, sizes, listed, fictive)

    def reference(self, on: date) -> ImportReference:
        return ImportReference(frozenset(self.units), doctors_by_unit(list(self.lists.values()), self.roles, on))


class StatementBatch:
    """A stand-in connection for the repository that records ``execute``/``executemany`` and sends
    each statement once with all its argument rows (asyncpg pipelines ``executemany``). Statements
    go in the order first seen, ``first`` before all (foreign keys: persons before their listings)."""

    def __init__(self, first: tuple[str, ...] = ()) -> None:
        self.statements: dict[str, list[tuple]] = {sql: [] for sql in first}

    async def execute(self, sql: str, *args: Any) -> None:
        self.statements.setdefault(sql, []).append(args)

    async def executemany(self, sql: str, args: list[tuple]) -> None:
        self.statements.setdefault(sql, []).extend(args)

    async def flush(self, conn: Any) -> None:
        for sql, rows in self.statements.items():
            if rows:
                await conn.executemany(sql, rows)
            rows.clear()
