"""Continuity of care: COC, UPC, SECON, HHI, MMCI and KPC per patient, from visit events."""

#: this service's migration component (its SQL files are in ``migrations/``), applied after the platform's
MIGRATIONS: dict[str, str] = {"continuity": "services.continuity"}
