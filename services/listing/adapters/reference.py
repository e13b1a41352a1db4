"""Reference data writes: units (contracts, listing limits), practitioner roles and their lists,
persons, SÄBO residences and RUB assessments. Upserts go through the history trigger (the old
row is kept in ``listing.history``); periods are closed, never deleted.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from services.listing.domain.model import fictive_list_display_name

LAKARE = "läkare"


@dataclass(frozen=True)
class UnitSpec:
    hsa_id: str
    name: str
    region_code: str
    verksamhetschef_hsa_id: str | None = None
    main_unit_id: str | None = None  # a filial's main unit (seed 004)
    filial_kind: str | None = None


async def upsert_unit(conn: Any, unit: UnitSpec) -> None:
    if unit.main_unit_id is not None:
        # the main unit's register may come later (facts of different units are not ordered): a stub
        # row now, its own fact fills it in; a filial of a filial is refused (one level only)
        await conn.execute(
            "INSERT INTO listing.care_unit (hsa_id, name, region_code) VALUES ($1, $1, $2) ON CONFLICT DO NOTHING",
            unit.main_unit_id, unit.region_code)
        nested = await conn.fetchval(
            "SELECT main_unit_id IS NOT NULL OR EXISTS (SELECT 1 FROM listing.care_unit f WHERE f.main_unit_id = $2) "
            "FROM listing.care_unit WHERE hsa_id = $1", unit.main_unit_id, unit.hsa_id)
        if nested:
            raise ValueError("a filial belongs to a main unit that is not itself a filial (one level only)")
    await conn.execute(
        """INSERT INTO listing.care_unit (hsa_id, name, region_code, verksamhetschef_hsa_id, main_unit_id, filial_kind)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (hsa_id) DO UPDATE SET name = EXCLUDED.name, region_code = EXCLUDED.region_code,
               verksamhetschef_hsa_id = EXCLUDED.verksamhetschef_hsa_id, main_unit_id = EXCLUDED.main_unit_id,
               filial_kind = EXCLUDED.filial_kind, updated_at = now()
           WHERE (listing.care_unit.name, listing.care_unit.region_code, listing.care_unit.verksamhetschef_hsa_id,
                  listing.care_unit.main_unit_id, listing.care_unit.filial_kind)
                 IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.region_code, EXCLUDED.verksamhetschef_hsa_id,
                                   EXCLUDED.main_unit_id, EXCLUDED.filial_kind)""",
        unit.hsa_id, unit.name, unit.region_code, unit.verksamhetschef_hsa_id, unit.main_unit_id, unit.filial_kind,
    )


async def add_contract(conn: Any, hsa_id: str, start_on: date, end_on: date | None) -> None:
    """L3: a contract period. An open contract is closed on the new one's start (never deleted)."""
    await conn.execute(
        "UPDATE listing.unit_contract SET end_on = GREATEST($2, start_on) "
        "WHERE care_unit_id = $1 AND end_on IS NULL AND start_on < $2",
        hsa_id, start_on,
    )
    await conn.execute(
        "INSERT INTO listing.unit_contract (care_unit_id, start_on, end_on) VALUES ($1, $2, $3)",
        hsa_id, start_on, end_on,
    )


async def end_contract(conn: Any, hsa_id: str, end_on: date) -> int:
    result = await conn.execute(
        "UPDATE listing.unit_contract SET end_on = GREATEST($2, start_on) WHERE care_unit_id = $1 AND end_on IS NULL",
        hsa_id, end_on,
    )
    return int(result.split()[-1])


async def add_listing_limit(conn: Any, hsa_id: str, max_listed: int, start_on: date, end_on: date | None,
                            exempt_groups: list[str]) -> None:
    """L7: a decided limit. An open earlier decision is closed on the new one's start."""
    await conn.execute(
        "UPDATE listing.listing_limit SET end_on = GREATEST($2, start_on) "
        "WHERE care_unit_id = $1 AND end_on IS NULL AND start_on < $2",
        hsa_id, start_on,
    )
    await conn.execute(
        "INSERT INTO listing.listing_limit (care_unit_id, max_listed, start_on, end_on, exempt_groups) "
        "VALUES ($1, $2, $3, $4, $5)",
        hsa_id, max_listed, start_on, end_on, sorted(set(exempt_groups)),
    )


async def add_list(conn: Any, list_id: str, care_unit_id: str, display_name: str, kind: str,
                   role_id: str | None) -> None:
    await conn.execute(
        """INSERT INTO listing.doctor_list (list_id, care_unit_id, display_name, kind, role_id)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (list_id) DO UPDATE SET display_name = EXCLUDED.display_name, role_id = EXCLUDED.role_id
           WHERE (listing.doctor_list.display_name, listing.doctor_list.role_id)
                 IS DISTINCT FROM (EXCLUDED.display_name, EXCLUDED.role_id)""",
        list_id, care_unit_id, display_name, kind, role_id,
    )


async def add_fictive_list(conn: Any, care_unit_id: str, label: str, list_id: str | None = None) -> str:
    """F3: the unit's fictive list ``"<unit name> Dr <label>"``."""
    name = await conn.fetchval("SELECT name FROM listing.care_unit WHERE hsa_id = $1", care_unit_id)
    if name is None:
        raise LookupError(f"unknown care unit {care_unit_id}")
    list_id = list_id or f"F-{care_unit_id}-{label}"
    await add_list(conn, list_id, care_unit_id, fictive_list_display_name(name, label), "fictive", None)
    return list_id


def doctor_list_id(role_id: str) -> str:
    """The list created for a new doctor role (the simulator's convention ``L-<role id>``)."""
    return f"L-{role_id}"[:64]


async def upsert_role(conn: Any, data: dict) -> bool:
    """A role started or changed (roster). A doctor's role gets a list of its own if none is bound
    to it (project choice: lists outlive roles; an administrator can bind a vacant list instead),
    named by the doctor's name when the roster gives one (else '<unit name> <HSA-id>').
    Returns True when a list was created."""
    await conn.execute(
        """INSERT INTO listing.practitioner_role (role_id, practitioner_id, care_unit_id, profession, legitimerad,
               employment_type, specialty, fte, individual_capacity, start_on, end_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (role_id) DO UPDATE SET practitioner_id = EXCLUDED.practitioner_id,
               care_unit_id = EXCLUDED.care_unit_id, profession = EXCLUDED.profession,
               legitimerad = EXCLUDED.legitimerad, employment_type = EXCLUDED.employment_type,
               specialty = EXCLUDED.specialty, fte = EXCLUDED.fte, individual_capacity = EXCLUDED.individual_capacity,
               start_on = EXCLUDED.start_on, end_on = EXCLUDED.end_on, updated_at = now()""",
        data["role_id"], data["practitioner_id"], data["care_unit_id"], data["profession"], data["legitimerad"],
        data["employment_type"], data.get("specialty"), Decimal(str(data["fte"])), data.get("individual_capacity"),
        date.fromisoformat(data["valid_from"]), date.fromisoformat(data["valid_to"]) if data.get("valid_to") else None,
    )
    if data["profession"].strip().casefold() != LAKARE:
        return False
    name = (data.get("practitioner_name") or "").strip()
    bound = await conn.fetchval("SELECT 1 FROM listing.doctor_list WHERE role_id = $1", data["role_id"])
    if bound:
        if name:  # the list bound to this role is shown by its doctor's name (roster facts carry it)
            await conn.execute(
                """UPDATE listing.doctor_list SET display_name = $2
                   WHERE role_id = $1 AND kind = 'doctor' AND display_name IS DISTINCT FROM $2""",
                data["role_id"], name)
        return False
    unit_name = await conn.fetchval("SELECT name FROM listing.care_unit WHERE hsa_id = $1", data["care_unit_id"])
    display = name or (f"{unit_name} {data['practitioner_id']}" if unit_name else data["practitioner_id"])
    list_id = doctor_list_id(data["role_id"])
    await conn.execute(
        """INSERT INTO listing.doctor_list (list_id, care_unit_id, display_name, kind, role_id)
           VALUES ($1, $2, $3, 'doctor', $4) ON CONFLICT (list_id) DO NOTHING""",
        list_id, data["care_unit_id"], display, data["role_id"],
    )
    return True


async def bind_list(conn: Any, list_id: str, role_id: str) -> None:
    """Bind a (vacant) doctor list to a successor's role; the old binding stays in history."""
    result = await conn.execute(
        "UPDATE listing.doctor_list SET role_id = $2 WHERE list_id = $1 AND kind = 'doctor'", list_id, role_id)
    if result.endswith(" 0"):
        raise LookupError(f"no doctor list {list_id}")


PERSON_COLUMNS = ("population_status", "status_date", "home_region", "birth_date", "guardian_keys")


def new_person(population_status: str, home_region: str | None, birth_date: date | None, status_date: date | None,
               guardian_keys: list[str] | None) -> dict[str, Any]:
    """The row a person's first register fact gives (pure; the SÄBO flag is read where it is written)."""
    return {"population_status": population_status, "status_date": status_date, "home_region": home_region or "00",
            "birth_date": birth_date, "guardian_keys": sorted(set(guardian_keys)) if guardian_keys is not None else None}


def person_changes(row: Mapping[str, Any], *, population_status: str, home_region: str | None,
                   birth_date: date | None, status_date: date | None,
                   guardian_keys: list[str] | None) -> dict[str, Any]:
    """What a register fact changes in a known person's row (pure): the columns to set. Death,
    emigration, moving out and protected identity are not here (they go through decide)."""
    guardians = sorted(set(guardian_keys)) if guardian_keys is not None else None
    changes: dict[str, Any] = {}
    if home_region and home_region != row["home_region"]:
        changes["home_region"] = home_region
    if birth_date and birth_date != row["birth_date"]:
        changes["birth_date"] = birth_date
    if guardians is not None and (row["guardian_keys"] is None or guardians != sorted(row["guardian_keys"])):
        changes["guardian_keys"] = guardians
    if population_status == "folkbokford" and row["population_status"] != "folkbokford":
        # moved back in / re-registered: no domain command for re-entry; history keeps the old row
        changes["population_status"] = "folkbokford"
        changes["status_date"] = status_date
    return changes


async def upsert_person(conn: Any, patient_key: str, *, population_status: str, home_region: str | None,
                        birth_date: date | None, status_date: date | None,
                        guardian_keys: list[str] | None = None) -> str | None:
    """Insert or update the person's register facts (not the ones with domain consequences:
    death, emigration, moving out and protected identity go through decide). Returns the
    previous population status (None for a new person).

    ``guardian_keys`` (P3): the guardians the register states (a list, possibly empty); None (the
    field left out of the fact), the last stated guardianship stays (NULL for a person the register
    never stated it for)."""
    row = await conn.fetchrow(
        "SELECT population_status, home_region, birth_date, guardian_keys FROM listing.person "
        "WHERE patient_key = $1 FOR UPDATE",
        patient_key,
    )
    if row is None:
        new = new_person(population_status, home_region, birth_date, status_date, guardian_keys)
        sabo = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM listing.sabo_residence WHERE patient_key = $1 AND period @> current_date)",
            patient_key,
        )
        await conn.execute(
            """INSERT INTO listing.person (patient_key, population_status, status_date, home_region, birth_date,
                                           sabo_resident, guardian_keys)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            patient_key, new["population_status"], new["status_date"], new["home_region"], new["birth_date"], sabo,
            new["guardian_keys"],
        )
        return None
    changes = person_changes(row, population_status=population_status, home_region=home_region,
                             birth_date=birth_date, status_date=status_date, guardian_keys=guardian_keys)
    if changes:
        cols = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(changes))
        await conn.execute(f"UPDATE listing.person SET {cols}, updated_at = now() WHERE patient_key = $1",
                           patient_key, *changes.values())
    return row["population_status"]


async def upsert_residence(conn: Any, data: dict) -> None:
    """A municipality's SÄBO residence period; the latest recorded fact of a ``residence_id`` wins.
    Its G3 qualifier (``main_care_in_residence``) is optional: a fact without it has not stated it,
    so it keeps what an earlier fact of the period recorded (NULL when none did: not recorded)."""
    await conn.execute(
        """INSERT INTO listing.sabo_residence (residence_id, patient_key, start_on, end_on, municipality_code, recorded_at,
                                               main_care_in_residence)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (residence_id) DO UPDATE SET start_on = EXCLUDED.start_on, end_on = EXCLUDED.end_on,
               municipality_code = EXCLUDED.municipality_code, recorded_at = EXCLUDED.recorded_at,
               main_care_in_residence = coalesce(EXCLUDED.main_care_in_residence,
                                                 listing.sabo_residence.main_care_in_residence)
           WHERE listing.sabo_residence.recorded_at <= EXCLUDED.recorded_at""",
        data["residence_id"], data["patient_key"], date.fromisoformat(data["sabo_from"]),
        date.fromisoformat(data["sabo_to"]) if data.get("sabo_to") else None, data.get("municipality_code"),
        _ts(data["recorded_at"]), main_care_in_residence(data),
    )


def main_care_in_residence(data: dict) -> bool | None:
    """The G3 qualifier of a ``residence.recorded.v1`` fact: whether the resident gets their main
    health care in the residence ("får sin huvudsakliga hälso- och sjukvård i boendet", seed 001);
    None when the producer did not state it (the field is optional, older producers do not send it)."""
    value = data.get("main_care_in_residence")
    return None if value is None else bool(value)


async def sabo_resident_on(conn: Any, patient_key: str, on: date) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM listing.sabo_residence WHERE patient_key = $1 AND period @> $2::date)",
        patient_key, on,
    )


def risk_row(data: dict) -> tuple:
    """A ``risk.assessed.v1`` fact as its ``listing.risk_assessment`` row (pure)."""
    return (data["assessment_id"], data["patient_key"], data["rub"], data["acg_version"], data["lookback_months"],
            _ts(data["computed_at"]))


async def add_risk_assessment(conn: Any, data: dict) -> None:
    await conn.execute(
        """INSERT INTO listing.risk_assessment (assessment_id, patient_key, rub, acg_version, lookback_months, computed_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (assessment_id) DO NOTHING""",
        *risk_row(data),
    )


def _ts(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def apply_unit_register(conn: Any, data: dict, recorded_on: date) -> None:
    """``care_unit.contracted.v1``: the region's register of a unit; the latest event is its state.

    Idempotent: the same state twice changes nothing. Periods are only added or closed (the
    triggers refuse moving or reopening one); a period that contradicts a recorded one raises
    ``ValueError`` (the consumer dead-letters it with the reason).
    """
    await upsert_unit(conn, UnitSpec(data["care_unit_id"], data["name"], data["region_code"],
                                     data.get("verksamhetschef_id"), data.get("main_unit_id"),
                                     data.get("filial_kind") if data.get("main_unit_id") else None))
    unit = data["care_unit_id"]
    start = date.fromisoformat(data["contract_from"])
    end = date.fromisoformat(data["contract_to"]) if data.get("contract_to") else None
    await _apply_period(conn, "unit_contract", unit, start, end, None)
    limit = data.get("listing_limit")
    if limit is not None:
        await _apply_period(conn, "listing_limit", unit, date.fromisoformat(limit["valid_from"]),
                            date.fromisoformat(limit["valid_to"]) if limit.get("valid_to") else None,
                            (int(limit["max_listed"]), sorted(set(limit.get("exempt_groups") or []))))
    else:  # no limit decided any more: an open decision ends on the day this was recorded
        await conn.execute(
            "UPDATE listing.listing_limit SET end_on = GREATEST($2, start_on) WHERE care_unit_id = $1 AND end_on IS NULL",
            unit, recorded_on)
    for fictive in data.get("fictive_lists") or ():
        await add_list(conn, fictive["list_id"], unit, fictive["name"], "fictive", None)


async def _apply_period(conn: Any, table: str, unit: str, start: date, end: date | None,
                        limit: tuple[int, list[str]] | None) -> None:
    rows = await conn.fetch(f"SELECT id, start_on, end_on FROM listing.{table} WHERE care_unit_id = $1", unit)
    same = next((r for r in rows if r["start_on"] == start), None)
    if same is not None:
        if same["end_on"] == end:
            return
        if same["end_on"] is None and end is not None:
            await conn.execute(f"UPDATE listing.{table} SET end_on = GREATEST($2, start_on) WHERE id = $1",
                               same["id"], end)
            return
        raise ValueError(f"{table}: a recorded period can only be closed, not moved or reopened")
    if table == "unit_contract":
        await add_contract(conn, unit, start, end)
    else:
        assert limit is not None
        await add_listing_limit(conn, unit, limit[0], start, end, limit[1])
