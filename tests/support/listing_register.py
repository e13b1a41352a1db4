"""A region's listing register for tests, written by the listing service's own reference-data
adapters (the code the region.care-units.v1 and roster consumers run): units with contracts,
doctors' roles (each doctor role gets its list), and valid personnummer for extracts."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tools.simulator.generate import personnummer12
from services.listing.adapters import reference

REGION = "19"
UNIT_A, UNIT_A_NAME = "SE2321000222-VCA1", "Vårdcentralen Norberg"
UNIT_B, UNIT_B_NAME = "SE2321000222-VCB2", "Vårdcentralen Sala"
UNIT_UNKNOWN = "SE2321000222-GONE"
DOCTOR_A1 = "SE2321000222-L001"  # tillsvidare, allmänmedicin, 1.0 FTE at unit A
DOCTOR_A2 = "SE2321000222-L002"  # tillsvidare at unit A, 0.001 FTE (capacity 1: F6 in tests)
DOCTOR_ST = "SE2321000222-L003"  # ST-läkare at unit A
LOCUM_A = "SE2321000222-L900"  # hyrläkare at unit A
DOCTOR_B1 = "SE2321000222-L101"  # at unit B


def pnr(serial: int, birth: date = date(1950, 1, 1)) -> str:
    """A valid 12-digit personnummer (birth date + serial), formatted as extracts have it."""
    number = personnummer12(birth + timedelta(days=serial // 900), 100 + serial % 900)
    return f"{number[:8]}-{number[8:]}"


def role(role_id: str, practitioner: str, unit: str, start: date, **overrides: Any) -> dict:
    data = {"role_id": role_id, "practitioner_id": practitioner, "care_unit_id": unit, "profession": "läkare",
            "legitimerad": True, "employment_type": "tillsvidare", "specialty": "allmanmedicin", "fte": 1.0,
            "valid_from": start.isoformat()}
    data.update(overrides)
    return data


async def given_region_register(conn: Any, start: date) -> None:
    """Two units under contract from ``start``; doctors at A (one tiny list for F6, an ST-läkare,
    a locum) and one at B."""
    for unit, name in ((UNIT_A, UNIT_A_NAME), (UNIT_B, UNIT_B_NAME)):
        await reference.upsert_unit(conn, reference.UnitSpec(unit, name, REGION))
        await reference.add_contract(conn, unit, start, None)
    for data in (
        role("role-a1", DOCTOR_A1, UNIT_A, start),
        role("role-a2", DOCTOR_A2, UNIT_A, start, fte=0.01, individual_capacity=1),
        role("role-st", DOCTOR_ST, UNIT_A, start, employment_type="st_allmanmedicin", fte=0.5),
        role("role-hyr", LOCUM_A, UNIT_A, start, employment_type="hyr"),
        role("role-b1", DOCTOR_B1, UNIT_B, start),
    ):
        await reference.upsert_role(conn, data)


def write_extract(path: Path, rows: list[tuple[str, ...]], header: bool = True, delimiter: str = ",") -> Path:
    lines = []
    if header:
        lines.append(delimiter.join(("person_id", "care_unit_id", "practitioner_id", "employment_type")))
    lines += [delimiter.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
