"""The re-identification vault: patient key -> person id, encrypted with AES-GCM.

Only the edge that receives person ids writes here, and only server-side code that shows a
listing unit's own staff their patients reads it (always audit-logged by the caller). The
key (``FLK_IDENTITY_VAULT_KEY``, base64 of 32 bytes) is not in the database.
"""
from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flk.security.pseudonym import PersonId


class IdentityVault:
    def __init__(self, key_b64: str) -> None:
        key = base64.b64decode(key_b64)
        if len(key) != 32:
            raise ValueError("the identity vault key must be 32 bytes (base64)")
        self._aead = AESGCM(key)

    def seal(self, patient_key: str, person: PersonId) -> bytes:
        nonce = os.urandom(12)
        # the patient key is authenticated data: a ciphertext cannot be moved to another row
        return nonce + self._aead.encrypt(nonce, person.value.encode(), patient_key.encode())

    def open(self, patient_key: str, kind: str, sealed: bytes) -> PersonId:
        value = self._aead.decrypt(sealed[:12], sealed[12:], patient_key.encode()).decode()
        return PersonId(kind, value)  # type: ignore[arg-type]

    async def store(self, conn, patient_key: str, person: PersonId, protected_identity: bool) -> None:
        await conn.execute(
            """INSERT INTO platform.person_identity (patient_key, person_id_ciphertext, id_kind, protected_identity)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (patient_key) DO UPDATE SET person_id_ciphertext = EXCLUDED.person_id_ciphertext,
                   id_kind = EXCLUDED.id_kind, protected_identity = EXCLUDED.protected_identity, updated_at = now()""",
            patient_key, self.seal(patient_key, person), person.kind, protected_identity,
        )

    async def lookup(self, conn, patient_key: str) -> tuple[PersonId, bool] | None:
        row = await conn.fetchrow(
            "SELECT person_id_ciphertext, id_kind, protected_identity FROM platform.person_identity WHERE patient_key = $1",
            patient_key,
        )
        if row is None:
            return None
        return self.open(patient_key, row["id_kind"], row["person_id_ciphertext"]), row["protected_identity"]
