"""`flk notifier ...`: run the service; configure a unit's alert routing."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import click


def _settings():
    from services.notifier.settings import NotifierSettings

    return NotifierSettings()


@click.group()
def notifier() -> None:
    """Care gaps (RUB 4–5 / SÄBO without a fast läkarkontakt) and the units' alerts."""


@notifier.command()
@click.option("--host", default=None, help="HTTP host (default FLK_NOTIFIER_HTTP_HOST)")
@click.option("--port", default=None, type=int, help="HTTP port (default FLK_NOTIFIER_HTTP_PORT)")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="apply pending migrations first")
def run(host: str | None, port: int | None, migrate: bool) -> None:
    """Run the notifier: consumer, outbox relay, ticker, alert planner, delivery, and the HTTP API."""
    from flk.service import apply_own_migrations, configure_logging, serve
    from services.notifier import MIGRATIONS
    from services.notifier.entrypoints.api import create_app

    configure_logging()
    settings = _settings()
    if migrate:
        apply_own_migrations(settings.platform, MIGRATIONS, click.echo)
    serve(create_app(settings), host or settings.http_host, port or settings.http_port)


@notifier.group()
def routing() -> None:
    """A care unit's alert routing (email, Teams, immediate or daily digest, quiet hours, escalation)."""


async def _with_connection(body):
    import asyncpg

    settings = _settings()
    conn = await asyncpg.connect(settings.platform.database_url.get_secret_value())
    try:
        return await body(conn)
    except asyncpg.UndefinedTableError:
        raise click.ClickException("the notifier's tables do not exist: run `flk db migrate` first") from None
    finally:
        await conn.close()


class _ConnPool:
    """A single connection that looks like a pool (for set_routing)."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def acquire(self):
        conn = self.conn

        class _Ctx:
            async def __aenter__(self):
                return conn

            async def __aexit__(self, *exc):
                return False

        return _Ctx()


@routing.command("set")
@click.argument("unit_id")
@click.option("--name", "unit_name", required=True, help="the unit's name as shown in alerts")
@click.option("--email", "email_to", multiple=True, help="unit mailbox (repeatable)")
@click.option("--teams-secret-ref", default=None,
              help="NAME of the secret holding the Teams Workflows webhook URL (FLK_NOTIFIER_SECRET_<REF> or a file)")
@click.option("--mode", type=click.Choice(["immediate", "daily_digest"]), default="daily_digest", show_default=True)
@click.option("--digest-hour", type=click.IntRange(0, 23), default=7, show_default=True)
@click.option("--quiet-hours", default="22:00-07:00", show_default=True, help="'HH:MM-HH:MM' or 'none'")
@click.option("--escalation-days", default="14", show_default=True, help="days before escalation, or 'none'")
@click.option("--escalation-email", multiple=True, help="escalation contact (repeatable)")
@click.option("--digest-when-empty", is_flag=True)
def routing_set(unit_id: str, unit_name: str, email_to: tuple[str, ...], teams_secret_ref: str | None, mode: str,
                digest_hour: int, quiet_hours: str, escalation_days: str, escalation_email: tuple[str, ...],
                digest_when_empty: bool) -> None:
    """Create or replace UNIT_ID's alert routing."""
    from services.notifier.adapters.alert_store import routing_to_dict
    from services.notifier.service_layer.routing import build_routing, set_routing

    try:
        days = None if escalation_days.strip().lower() == "none" else int(escalation_days)
        routing_value = build_routing(
            unit_id, unit_name, email_to=email_to, teams_webhook_secret_ref=teams_secret_ref, mode=mode,
            digest_hour=digest_hour, quiet_hours=quiet_hours, escalation_after_days=days,
            escalation_email=escalation_email, digest_when_empty=digest_when_empty,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None

    async def body(conn):
        await set_routing(_ConnPool(conn), routing_value, "cli", datetime.now(timezone.utc))

    asyncio.run(_with_connection(body))
    click.echo(json.dumps(routing_to_dict(routing_value), ensure_ascii=False, indent=2))


@routing.command("show")
@click.argument("unit_id", required=False)
def routing_show(unit_id: str | None) -> None:
    """Show one unit's routing, or every unit's."""
    from services.notifier.adapters import alert_store

    async def body(conn):
        if unit_id:
            r = await alert_store.get_routing(conn, unit_id)
            return [r] if r else []
        return await alert_store.list_routing(conn)

    found = asyncio.run(_with_connection(body))
    if unit_id and not found:
        raise click.ClickException(f"no alert routing for unit {unit_id}")
    click.echo(json.dumps([alert_store.routing_to_dict(r) for r in found], ensure_ascii=False, indent=2))
