"""`flk run`: the main job. Brings up what the project has and reports where to look.

It grows with the services: today it starts the local infrastructure (Kafka, PostgreSQL,
the registry's topics, migrations) and shows its status.
"""
from __future__ import annotations

import click

from flk.infra.cli import status as infra_status
from flk.infra.cli import up as infra_up


@click.command("run")
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the main job on this machine (idempotent)."""
    ctx.invoke(infra_up, with_prometheus=False, topics=True)
    ctx.invoke(infra_status)
