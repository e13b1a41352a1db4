"""The identity vault on the real PostgreSQL: names are sealed beside the person id, and an edge that
knows no name (the listing import, the population register) never erases one another edge stored."""
from __future__ import annotations

import asyncpg
import pytest

from flk.security.pseudonym import PersonId
from flk.security.vault import IdentityVault
from flk.settings import DEV_VAULT_KEY
from tests.support.builders import a_patient_key

pytestmark = pytest.mark.integration


async def test_a_name_stored_once_survives_a_later_store_without_a_name(migrated_database):
    vault, key = IdentityVault(DEV_VAULT_KEY), a_patient_key(7)
    person = PersonId("personnummer", "189001019802")
    conn = await asyncpg.connect(migrated_database)
    try:
        await vault.store(conn, key, person, False, name="Karin Berg")
        await vault.store(conn, key, person, True)  # e.g. protected identity recorded later, no name known
        row = await conn.fetchrow("SELECT protected_identity, name_ciphertext FROM platform.person_identity "
                                  "WHERE patient_key = $1", key)
    finally:
        await conn.close()
    assert row["protected_identity"] is True
    assert vault.open_name(key, row["name_ciphertext"]) == "Karin Berg"
