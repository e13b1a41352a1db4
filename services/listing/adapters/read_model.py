"""Read side of the listing register for the API: a patient's current records, their history,
and a unit's lists with size, capacity and RUB mix. Plain queries; the views are pure functions
(``domain.views``, ``domain.capacity``) applied by the routes."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from services.listing.adapters.rows import (
    LOAD_PATIENTS,
    list_from_row,
    record_from_row,
    unit_from_row,
)
from services.listing.domain.model import (
    EmploymentType,
    ListingState,
    PatientRecord,
    Period,
    PractitionerRole,
    months_before,
)


#: A patient's decision slice (the repository's LOAD_PATIENTS) with the units of their listings and
#: the lists of their assignments, in one round trip (an API read is this query plus the audit insert).
CURRENT_RECORD = f"""
WITH p AS MATERIALIZED ({LOAD_PATIENTS})
SELECT p.*,
  (SELECT jsonb_agg(jsonb_build_object(
              'hsa_id', u.hsa_id, 'name', u.name, 'region_code', u.region_code,
              'verksamhetschef_hsa_id', u.verksamhetschef_hsa_id, 'main_unit_id', u.main_unit_id,
              'contracts', (SELECT jsonb_agg(jsonb_build_array(c.start_on, c.end_on) ORDER BY c.start_on)
                            FROM listing.unit_contract c WHERE c.care_unit_id = u.hsa_id),
              'limits', (SELECT jsonb_agg(jsonb_build_array(l.max_listed, l.start_on, l.end_on, l.exempt_groups)
                                          ORDER BY l.start_on)
                         FROM listing.listing_limit l WHERE l.care_unit_id = u.hsa_id)))
     FROM listing.care_unit u
     WHERE u.hsa_id IN (SELECT x->>'care_unit_id' FROM jsonb_array_elements(p.listings) x
                        UNION SELECT x->>'care_unit_id' FROM jsonb_array_elements(p.pending) x)) AS read_units,
  (SELECT jsonb_agg(jsonb_build_object('list_id', d.list_id, 'care_unit_id', d.care_unit_id,
                                       'display_name', d.display_name, 'kind', d.kind, 'role_id', d.role_id))
     FROM listing.doctor_list d
     WHERE d.list_id IN (SELECT x->>'list_id' FROM jsonb_array_elements(p.assignments) x)) AS read_lists
FROM p
"""


def _json_rows(value: Any) -> list[dict]:
    return [] if value is None else orjson.loads(value)


async def current_record(conn: Any, patient_key: str, today: date) -> tuple[PatientRecord | None, ListingState]:
    """The person's open records and the units and lists they name (for the views), one query."""
    row = await conn.fetchrow(CURRENT_RECORD, [patient_key], months_before(today, 13))
    if row is None:
        return None, ListingState()
    record = record_from_row(row)
    units = [unit_from_row(u) for u in _json_rows(row["read_units"])]
    lists = [list_from_row(d) for d in _json_rows(row["read_lists"])]
    return record, ListingState.build(patients=[record], units=units, lists=lists)


def responsible_unit(record: PatientRecord | None, today: date) -> str | None:
    """The unit whose staff may read the patient: the listing covering today, else the open one
    (responsibility may start tomorrow, L6)."""
    if record is None:
        return None
    covering = next((lst for lst in record.listings if lst.period.contains(today)), None)
    chosen = covering or record.open_listing
    return chosen.care_unit_id if chosen is not None else None


AWAITING_GUARDIAN = """
SELECT w.patient_key, w.care_unit_id, u.name AS care_unit_name, w.requested_on, w.expires_on
FROM listing.pending_listing w LEFT JOIN listing.care_unit u ON u.hsa_id = w.care_unit_id
WHERE w.closed_on IS NULL AND w.awaiting_guardian_keys @> ARRAY[$1]::text[] AND w.expires_on > $2
ORDER BY w.requested_on, w.patient_key
"""


async def awaiting_guardian(conn: Any, guardian_key: str, today: date) -> list[dict]:
    """P3: the children's listing requests that wait for this guardian's consent (the 1177 view)."""
    return [dict(r) for r in await conn.fetch(AWAITING_GUARDIAN, guardian_key, today)]


HISTORY_QUERIES = {
    "listings": """SELECT listing_id::text, care_unit_id, registered_on, start_on AS responsibility_from, end_on,
                          origin, channel, initiated_by, exemption_reason, end_reason
                   FROM listing.listing WHERE patient_key = $1 ORDER BY registered_on, created_at""",
    "changes": """SELECT changed_on, from_care_unit_id, to_care_unit_id, initiated_by, origin, exemption_reason,
                         counts_toward_switch_limit
                  FROM listing.listing_change WHERE patient_key = $1 ORDER BY changed_on, id""",
    "fast_lakarkontakter": """SELECT a.assignment_id::text, a.list_id, a.list_kind, a.care_unit_id, a.practitioner_id,
                                     d.display_name, a.coordinating, a.start_on, a.end_on, a.end_reason
                              FROM listing.flk_assignment a LEFT JOIN listing.doctor_list d ON d.list_id = a.list_id
                              WHERE a.patient_key = $1 ORDER BY a.start_on, a.created_at""",
    "declines": """SELECT care_unit_id, start_on, end_on FROM listing.flk_decline
                   WHERE patient_key = $1 ORDER BY start_on, id""",
    "pending_listings": """SELECT care_unit_id, requested_on, expires_on, closed_on, outcome
                           FROM listing.pending_listing WHERE patient_key = $1 ORDER BY requested_on, created_at""",
    "fast_vardkontakter": """SELECT appointment_id::text, care_unit_id, practitioner_id, profession, start_on, end_on,
                                    end_reason
                             FROM listing.fast_vardkontakt WHERE patient_key = $1 ORDER BY start_on, created_at""",
}


async def history(conn: Any, patient_key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for name, sql in HISTORY_QUERIES.items():
        out[name] = [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in dict(r).items()}
                     for r in await conn.fetch(sql, patient_key)]
    return out


UNIT_LISTS = """
WITH latest_rub AS (
    SELECT DISTINCT ON (patient_key) patient_key, rub FROM listing.risk_assessment
    WHERE patient_key IN (SELECT a.patient_key FROM listing.flk_assignment a
                          JOIN listing.doctor_list d ON d.list_id = a.list_id
                          WHERE d.care_unit_id = $1 AND a.end_on IS NULL)
    ORDER BY patient_key, computed_at DESC
)
SELECT d.list_id, d.kind, d.display_name, d.role_id,
       r.practitioner_id, r.care_unit_id AS role_unit, r.profession, r.legitimerad, r.employment_type, r.specialty,
       r.fte, r.individual_capacity, r.start_on, r.end_on,
       count(a.patient_key) AS size,
       count(a.patient_key) FILTER (WHERE lr.rub = 0) AS rub_0,
       count(a.patient_key) FILTER (WHERE lr.rub = 1) AS rub_1,
       count(a.patient_key) FILTER (WHERE lr.rub = 2) AS rub_2,
       count(a.patient_key) FILTER (WHERE lr.rub = 3) AS rub_3,
       count(a.patient_key) FILTER (WHERE lr.rub = 4) AS rub_4,
       count(a.patient_key) FILTER (WHERE lr.rub = 5) AS rub_5,
       count(a.patient_key) FILTER (WHERE a.patient_key IS NOT NULL AND lr.rub IS NULL) AS rub_unknown
FROM listing.doctor_list d
LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
LEFT JOIN listing.flk_assignment a ON a.list_id = d.list_id AND a.end_on IS NULL
LEFT JOIN latest_rub lr ON lr.patient_key = a.patient_key
WHERE d.care_unit_id = $1
GROUP BY d.list_id, r.role_id
ORDER BY d.kind, d.display_name, d.list_id
"""


async def unit(conn: Any, unit_id: str) -> dict | None:
    row = await conn.fetchrow(
        """SELECT hsa_id, name, region_code,
                  (SELECT count(*) FROM listing.listing l WHERE l.care_unit_id = u.hsa_id AND l.end_on IS NULL) AS listed
           FROM listing.care_unit u WHERE hsa_id = $1""", unit_id)
    return dict(row) if row is not None else None


async def unit_lists(conn: Any, unit_id: str) -> list[dict]:
    return [dict(r) for r in await conn.fetch(UNIT_LISTS, unit_id)]


def role_of(row: dict) -> PractitionerRole | None:
    if row["role_id"] is None or row["practitioner_id"] is None:
        return None
    return PractitionerRole(
        role_id=row["role_id"], practitioner_id=row["practitioner_id"], care_unit_id=row["role_unit"],
        profession=row["profession"], legitimerad=row["legitimerad"],
        employment_type=EmploymentType(row["employment_type"]), specialty=row["specialty"],
        fte=Decimal(row["fte"]), period=Period(row["start_on"], row["end_on"]),
        individual_capacity=row["individual_capacity"],
    )
