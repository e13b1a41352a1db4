"""`flk token issue`: tokens for local use and tests."""
from __future__ import annotations

from datetime import timedelta

import click

from flk.security.tokens import Role, issue_token
from flk.settings import PlatformSettings


@click.group()
def token() -> None:
    """Bearer tokens (signed JWT) for the APIs."""


@token.command()
@click.option("--subject", required=True, help="HSA-id of the user, or a service name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--unit", "units", multiple=True, help="HSA-id of a care unit the caller acts for (repeatable)")
@click.option("--patient-key", help="for --role patient: the patient's pseudonymous key")
@click.option("--hours", default=8.0, show_default=True, help="lifetime")
def issue(subject: str, role: str, units: tuple[str, ...], patient_key: str | None, hours: float) -> None:
    """Print a signed token (uses FLK_JWT_SIGNING_KEY, or the verify key for HS256)."""
    settings = PlatformSettings()
    if settings.environment == "production":
        raise click.ClickException("tokens are issued by the region's identity provider in production")
    click.echo(issue_token(settings, subject, Role(role), list(units), patient_key, timedelta(hours=hours)))
