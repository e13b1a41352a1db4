"""The `flk` command: the composition root that puts the platform, the services and the tools together.

Each service brings its own command group (`services/*/entrypoints/cli.py`), the platform its
maintenance groups (`token`, `topics`), the tools theirs (`infra`, `run`, `simulate`, `report`,
`db`). Groups are imported lazily (only when invoked), so `flk --help` stays fast and nothing
does I/O at import time.
"""
from __future__ import annotations

import importlib
import os

import click

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "run": "tools.mainjob.cli:run",
    "infra": "tools.infra.cli:infra",
    "token": "flk.security.cli:token",
    "db": "tools.migrations:db",
    "topics": "flk.events.cli:topics",
    "kafka": "tools.kafka_acls:kafka",
    "continuity": "services.continuity.entrypoints.cli:continuity",
    "listing": "services.listing.entrypoints.cli:listing",
    "notifier": "services.notifier.entrypoints.cli:notifier",
    "ingest": "services.ingest.entrypoints.cli:ingest",
    "simulate": "tools.simulator.cli:simulate",
    "ehr": "services.continuity.entrypoints.ehr_import:ehr",
    "report": "tools.report.cli:report",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup)
@click.version_option(package_name="flk-primarvard")
def main() -> None:
    """Fast läkarkontakt, listing and continuity of care for a Swedish region."""
    if not os.environ.get("FLK_LISTING_PROFILE"):
        return  # nothing to derive: no listing rules loaded for every command
    from tools.regional_profile import derive_notifier_environment

    try:
        derive_notifier_environment(os.environ)
    except ValueError as exc:  # an unknown profile, or bands that disagree with it (ProfileMismatch)
        raise click.UsageError(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    main()
