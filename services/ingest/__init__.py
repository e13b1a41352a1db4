"""The FHIR R4 gateway: Encounters (and Bundles of them) from EHRs -> the visit events."""

#: this service's migration component (its SQL files are in ``migrations/``), applied after the platform's
MIGRATIONS: dict[str, str] = {"ingest": "services.ingest"}
