"""The re-identification vault: patient key -> person id (and the person's name, when the edge
knows it), encrypted with AES-GCM.

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

    @staticmethod
    def _name_aad(patient_key: str) -> bytes:
        # another field than the person id's: a name ciphertext cannot pass for a person id or move rows
        return f"{patient_key}|name".encode()

    def seal_name(self, patient_key: str, name: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, name.encode(), self._name_aad(patient_key))

    def open_name(self, patient_key: str, sealed: bytes) -> str:
        return self._aead.decrypt(sealed[:12], sealed[12:], self._name_aad(patient_key)).decode()

    def _row(self, patient_key: str, person: PersonId, protected_identity: bool, name: str | None) -> tuple:
        return (patient_key, self.seal(patient_key, person), person.kind, protected_identity,
                self.seal_name(patient_key, name) if name else None)

    async def store(self, conn, patient_key: str, person: PersonId, protected_identity: bool,
                    name: str | None = None) -> None:
        await conn.execute(STORE, *self._row(patient_key, person, protected_identity, name))

    async def store_many(self, conn, identities: list[tuple[str, PersonId, bool, str | None]]) -> None:
        """Several (patient key, person id, protected, name) in one round trip."""
        if identities:
            await conn.executemany(STORE, [self._row(*identity) for identity in identities])

    async def lookup(self, conn, patient_key: str) -> tuple[PersonId, bool] | None:
        row = await conn.fetchrow(
            "SELECT person_id_ciphertext, id_kind, protected_identity FROM platform.person_identity WHERE patient_key = $1",
            patient_key,
        )
        if row is None:
            return None
        return self.open(patient_key, row["id_kind"], row["person_id_ciphertext"]), row["protected_identity"]


STORE = """INSERT INTO platform.person_identity (patient_key, person_id_ciphertext, id_kind, protected_identity,
               name_ciphertext)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (patient_key) DO UPDATE SET person_id_ciphertext = EXCLUDED.person_id_ciphertext,
               id_kind = EXCLUDED.id_kind, protected_identity = EXCLUDED.protected_identity,
               -- an edge that knows no name (the listing import) keeps the name another edge stored
               name_ciphertext = coalesce(EXCLUDED.name_ciphertext, platform.person_identity.name_ciphertext),
               updated_at = now()"""
