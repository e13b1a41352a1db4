"""Care-gap alerts: RUB 4–5 patients and SÄBO residents without a fast läkarkontakt, to the care units."""

#: this service's migration component (its SQL files are in ``migrations/``), applied after the platform's
MIGRATIONS: dict[str, str] = {"notifier": "services.notifier"}
