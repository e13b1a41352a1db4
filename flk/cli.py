"""The `flk` command. Each capability adds a subcommand group here.

Subcommand modules are imported lazily (only when their group is invoked), so
`flk --help` stays fast and nothing does I/O at import time.
"""
from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "run": "flk.main_job:run",
    "infra": "flk.infra.cli:infra",
    "token": "flk.security.cli:token",
    "db": "flk.db.cli:db",
    "topics": "flk.events.cli:topics",
    "continuity": "services.continuity.entrypoints.cli:continuity",
    "listing": "services.listing.entrypoints.cli:listing",
    "notifier": "services.notifier.entrypoints.cli:notifier",
    "ingest": "services.ingest.entrypoints.cli:ingest",
    "simulate": "flk.simulator.cli:simulate",
    "ehr": "services.continuity.entrypoints.ehr_import:ehr",
    "report": "flk.report.cli:report",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a capability not built yet
            if exc.name and module_name.startswith(exc.name):
                return None
            raise
        return getattr(module, attribute)


@click.group(cls=LazyGroup)
@click.version_option(package_name="flk-primarvard")
def main() -> None:
    """Fast läkarkontakt, listing and continuity of care for a Swedish region."""


if __name__ == "__main__":  # pragma: no cover
    main()
