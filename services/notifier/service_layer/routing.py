"""Configuring a unit's alert routing (used by the admin API and `flk notifier routing set`)."""
from __future__ import annotations

import re
from datetime import datetime

from services.notifier.adapters import alert_store
from services.notifier.adapters.secrets import validate_secret_ref
from services.notifier.domain.alerts import AlertMode, UnitRouting

_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_HSA_ID = re.compile(r"^SE[0-9]{10}-[0-9A-Za-z]{1,31}$")


def build_routing(
    unit_id: str,
    unit_name: str,
    *,
    email_to: list[str] | tuple[str, ...] = (),
    teams_webhook_secret_ref: str | None = None,
    mode: str = AlertMode.DAILY_DIGEST.value,
    digest_hour: int = 7,
    quiet_hours: str | None = "22:00-07:00",
    escalation_after_days: int | None = 14,
    escalation_email: list[str] | tuple[str, ...] = (),
    digest_when_empty: bool = False,
    timezone: str = "Europe/Stockholm",
) -> UnitRouting:
    """Validated routing; ValueError with a reason that can be shown to the caller."""
    if not _HSA_ID.match(unit_id):
        raise ValueError("care unit id must be an HSA-id (SE + 10 digits + '-' + local part)")
    if not unit_name.strip():
        raise ValueError("unit name is required")
    for address in (*email_to, *escalation_email):
        if not _EMAIL.match(address):
            raise ValueError(f"not an email address: {address!r}")
    if teams_webhook_secret_ref is not None:
        validate_secret_ref(teams_webhook_secret_ref)
    return UnitRouting(
        unit_id=unit_id,
        unit_name=unit_name.strip(),
        email_to=tuple(email_to),
        teams_webhook_secret_ref=teams_webhook_secret_ref,
        mode=AlertMode(mode),
        digest_hour=digest_hour,
        quiet_hours=alert_store.parse_quiet_hours(quiet_hours),
        escalation_after_days=escalation_after_days,
        escalation_email=tuple(escalation_email),
        digest_when_empty=digest_when_empty,
        timezone=timezone,
    )


async def set_routing(pool, routing: UnitRouting, updated_by: str | None, now: datetime) -> None:
    async with pool.acquire() as conn:
        await alert_store.upsert_routing(conn, routing, updated_by, now)
