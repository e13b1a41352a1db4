"""The listing register: who is listed where, with which fast läkarkontakt, under the region's rules."""

#: this service's migration component (its SQL files are in ``migrations/``), applied after the platform's
MIGRATIONS: dict[str, str] = {"listing": "services.listing"}
