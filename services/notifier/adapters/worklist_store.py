"""PostgreSQL reads of the worklist: a unit's open gaps (patient level), re-identification
through the vault, and the audit records of who saw which patient.

The only notifier module besides gap detection that reads ``notifier.care_gap.patient_key``;
callers check access first (``may_read_unit_patients``) and audit every view.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag

from flk.security.audit import INSERT as AUDIT_INSERT, AuditRecord
from flk.security.vault import IdentityVault
from services.notifier.domain.care_gaps import GapCause, GapKind
from services.notifier.domain.worklist import OpenGap, VaultEntry

log = logging.getLogger(__name__)

_COLUMNS = "gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at, kind"


def _gap(row) -> OpenGap:
    return OpenGap(row["gap_id"], row["patient_key"], row["care_unit_id"], GapCause(row["cause"]), row["rub"],
                   row["sabo"], row["opened_at"], GapKind(row["kind"]))


async def open_gaps_of_unit(conn, unit_id: str) -> list[OpenGap]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM notifier.care_gap WHERE care_unit_id = $1 AND resolved_at IS NULL "
        "ORDER BY opened_at, gap_id", unit_id)
    return [_gap(r) for r in rows]


async def open_gap(conn, unit_id: str, gap_id: uuid.UUID) -> OpenGap | None:
    """The open gap with this id at this unit (None for another unit's gap or a closed one)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM notifier.care_gap WHERE gap_id = $1 AND care_unit_id = $2 AND resolved_at IS NULL",
        gap_id, unit_id)
    return _gap(row) if row else None


async def identities(conn, vault: IdentityVault, patient_keys: Iterable[str]) -> dict[str, VaultEntry]:
    """Re-identify the given patients: (person id, protected, name or None), decrypted here,
    server-side; never stored or logged. A protected identity's name is not even decrypted."""
    keys = sorted(set(patient_keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT patient_key, person_id_ciphertext, id_kind, protected_identity, name_ciphertext "
        "FROM platform.person_identity WHERE patient_key = ANY($1::text[])", keys)
    found: dict[str, VaultEntry] = {}
    undecryptable = 0
    for row in rows:
        key, protected = row["patient_key"], row["protected_identity"]
        try:
            person = vault.open(key, row["id_kind"], row["person_id_ciphertext"])
            sealed_name = row["name_ciphertext"]
            name = vault.open_name(key, sealed_name) if sealed_name is not None and not protected else None
        except (InvalidTag, ValueError):
            undecryptable += 1
            continue
        found[key] = (person, protected, name)
    if undecryptable:
        log.warning("worklist: %d identity rows could not be decrypted (wrong vault key?)", undecryptable)
    return found


async def unit_names(conn, unit_ids: Iterable[str]) -> dict[str, str]:
    """Units' names as the notifier knows them (its alert routing, set from the unit register)."""
    ids = sorted(set(unit_ids))
    if not ids:
        return {}
    rows = await conn.fetch("SELECT care_unit_id, unit_name FROM notifier.unit_routing WHERE care_unit_id = ANY($1::text[])",
                            ids)
    return {r["care_unit_id"]: r["unit_name"] for r in rows}


async def audit_many(pool, records: list[AuditRecord]) -> None:
    """Several audit records in one round trip (same table and columns as PostgresAuditLog)."""
    if not records:
        return
    await pool.executemany(AUDIT_INSERT, [
        (r.occurred_at, r.principal.subject, r.principal.role.value, sorted(r.principal.units), r.unit_id,
         r.patient_key, r.action, r.purpose, r.outcome, r.request_id) for r in records])


async def wait_until_resolved(pool, gap_id: uuid.UUID, timeout_s: float, interval_s: float = 0.1) -> bool:
    """True once the gap is closed (the listing event has reached gap detection), else False."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        closed = await pool.fetchval(
            "SELECT resolved_at IS NOT NULL FROM notifier.care_gap WHERE gap_id = $1", gap_id)
        if closed:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval_s)
