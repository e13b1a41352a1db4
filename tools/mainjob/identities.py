"""The simulated population register's edge: where person ids enter, they are sealed into the
identity vault (``platform.person_identity``), as a region's population register adapter would.

The simulated persons get synthetic identities (``tools.simulator.identities``: Skatteverket's test
personnummer and generated names), so the worklist shows a listing unit's staff who their patients
are. A protected identity (P2) is sealed with its flag and stays hidden on every page. Ids never
reach Kafka: the events carry the pseudonymous key only.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from flk.security.vault import IdentityVault
from tools.simulator.identities import SyntheticIdentities

PERSON_EVENTS = ("person.registered.v1", "person.updated.v1")


class IdentityEdge:
    def __init__(self, vault: IdentityVault, identities: SyntheticIdentities | None = None) -> None:
        self.vault = vault
        self.identities = identities or SyntheticIdentities()
        self.protected: dict[str, bool] = {}
        self.sealed = 0
        self.without_identity = 0  # the test series was used up

    def rows(self, items: Iterable) -> list[tuple]:
        """Vault rows for the person events among ``items`` (simulator ``Emitted``), in order; a later
        event of the same person in the same batch wins."""
        rows: dict[str, tuple] = {}
        for item in items:
            if item.event_type not in PERSON_EVENTS:
                continue
            data = item.data
            key = data["patient_key"]
            if "protected_identity" in data:
                self.protected[key] = bool(data["protected_identity"])
            birth = data.get("birth_date")
            known = self.identities.given(key)
            if known is None and birth is None:
                continue  # an update of a person never registered here
            identity = known or self.identities.identity_for(key, date.fromisoformat(birth))
            if identity is None:
                self.without_identity += 1
                continue
            rows[key] = (key, identity.person, self.protected.get(key, False), identity.name)
        return list(rows.values())

    async def seal(self, conn, items: Iterable) -> int:
        """Seal the person events' identities; returns how many rows were written."""
        rows = self.rows(items)
        await self.vault.store_many(conn, rows)
        self.sealed += len(rows)
        return len(rows)
