"""`flk run`: the main job (`./run main` calls it).

Brings up the local infrastructure, the three services as child processes (listing 8081,
continuity 8082, notifier 8083), a demo mail catcher and Teams sink, routes every simulated
unit's alerts to them, replays a simulated region through Kafka (fast-forward), waits until
every consumer group has caught up, then prints where to look and the goal summary (G1–G4
against their targets, alerts, dead letters) — every number read from the services' own
tables and topics. Ctrl-C or SIGTERM stops everything it started.
"""
from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from datetime import datetime

import click

from tools.infra.cli import up as infra_up


@click.command("run")
@click.option("--preset", type=click.Choice(["small", "region"]), default="small", show_default=True,
              help="small: 4 000 people, 5 units, 12 months; region: ~280 000 people, 30 units, 18 months.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--end-date", type=click.DateTime(formats=["%Y-%m-%d"]), help="Last simulated day [default: today].")
@click.option("--baseline", "baseline_date", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Baseline date of the goals [default: half-way through the simulated period].")
@click.option("--limit-people", type=click.IntRange(min=100), help="Simulate fewer people.")
@click.option("--with-prometheus/--without-prometheus", default=True, show_default=True,
              help="Also start Prometheus (Debian package) scraping the services, and Alertmanager routing "
                   "its operations alerts to the demo mail catcher and Teams sink.")
@click.option("--fresh", is_flag=True,
              help="Isolated run: a new topic prefix and a new database (the default is the real local setup).")
@click.option("--external", is_flag=True,
              help="Use the Kafka and PostgreSQL of FLK_KAFKA_BOOTSTRAP / FLK_DATABASE_URL (managed services; "
                   "FLK_TOPIC_PREFIX applies) instead of starting local ones.")
@click.option("--exit-after-summary", is_flag=True, help="Stop everything after printing the summary (tests, CI).")
@click.option("--snapshot-every", "snapshot_every_months", type=click.IntRange(min=0), default=3, show_default=True,
              help="Months between the continuity snapshots of the replay (its start, every N months, the "
                   "baseline, today): the goal figures' history. 0: baseline and today only.")
@click.option("--replicas", "replicas_spec", default="1", show_default=True, metavar="N|SERVICE=N,…",
              help="Processes per service: N of each of continuity, listing and notifier, or per service, e.g. "
                   "continuity=3,listing=2,notifier=2 (the rest once). Each replica has its own process, HTTP port "
                   "(+100 per replica), data directory and replica name (docs/operations.md, \"Scaling out\").")
@click.option("--timeout", "timeout_s", type=float, default=900.0, show_default=True,
              help="Seconds to wait for the consumers to catch up.")
@click.pass_context
def run(ctx: click.Context, preset: str, seed: int, end_date: datetime | None, baseline_date: datetime | None,
        limit_people: int | None, with_prometheus: bool, fresh: bool, external: bool, exit_after_summary: bool,
        timeout_s: float, snapshot_every_months: int, replicas_spec: str) -> None:
    """Run the main job on this machine: infrastructure, services, a simulated region, the goal summary."""
    from tools.infra.postgres import create_app_database
    from tools.infra.settings import InfraSettings
    from tools.mainjob.goals import local_today
    from tools.mainjob.job import JobConfig, parse_replicas

    from flk.settings import PlatformSettings

    try:
        replicas = parse_replicas(replicas_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--replicas") from None
    if with_prometheus and (external or not _has_prometheus()):
        if not external:
            click.echo("note: 'prometheus' or 'prometheus-alertmanager' is not installed; running without them",
                       err=True)
        with_prometheus = False
    infra = InfraSettings()
    connection = None
    if external:  # managed Kafka and PostgreSQL: nothing local is started
        platform = PlatformSettings()
        bootstrap, prefix = platform.kafka_bootstrap, platform.topic_prefix
        connection = platform.kafka_connection()  # TLS/SASL (FLK_KAFKA_*; the services read the same)
        database_url = platform.database_url.get_secret_value()
    else:
        ctx.invoke(infra_up, with_prometheus=with_prometheus, topics=True)
        bootstrap, prefix, database_url = infra.kafka_bootstrap, "", infra.dsn("app")
    state_dir = infra.state_dir / "main-job"
    if fresh and external:
        raise click.UsageError("--fresh creates a local database; with --external set FLK_TOPIC_PREFIX and "
                               "FLK_DATABASE_URL yourself")
    if fresh:
        run_id = uuid.uuid4().hex[:8]
        prefix = f"run{run_id}."
        database_url = asyncio.run(create_app_database(infra, f"flk_run_{run_id}"))
        state_dir = infra.state_dir / f"main-job-{run_id}"
        click.echo(f"isolated run: topic prefix {prefix!r}, database flk_run_{run_id}")
    config = JobConfig(
        bootstrap=bootstrap, database_url=database_url, state_dir=state_dir, preset=preset, seed=seed,
        end_date=end_date.date() if end_date else local_today(),
        baseline_date=baseline_date.date() if baseline_date else None, limit_people=limit_people,
        topic_prefix=prefix, timeout_s=timeout_s, progress=sys.stderr.isatty(),
        snapshot_every_months=snapshot_every_months, replicas=replicas,
        **({"kafka_connection": connection} if connection is not None else {}),
    )
    prometheus_url = f"http://{infra.prometheus_host}:{infra.prometheus_port}" if with_prometheus else None
    alertmanager_url = f"http://{infra.alertmanager_host}:{infra.alertmanager_port}" if with_prometheus else None
    code = asyncio.run(run_main_job(config, prometheus_url, exit_after_summary, alertmanager_url=alertmanager_url))
    ctx.exit(code)


async def run_main_job(config, prometheus_url: str | None, exit_after_summary: bool, echo=click.echo,
                       on_summary=None, alertmanager_url: str | None = None) -> int:
    """The job itself (also what the tests call). Returns the exit code.

    ``on_summary(job)``, if given, is awaited after the summary is printed, while the services
    still run (the dashboard test queries them then).
    """
    from tools.mainjob.goals import render_summary
    from tools.mainjob.job import MainJob, ServiceFailed, where_to_look

    job = MainJob(config, echo=echo)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    work = asyncio.create_task(job.run())
    try:
        await asyncio.wait({work, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            echo("interrupted: stopping what was started")
            return 130
        try:
            summary = work.result()
        except (ServiceFailed, TimeoutError) as exc:
            echo(f"flk run failed: {exc}")
            return 1
        echo("")
        echo(where_to_look(job, prometheus_url, alertmanager_url))
        echo("")
        echo(render_summary(summary))
        if on_summary is not None:  # while it runs, Ctrl-C/SIGTERM still stop everything
            hook = asyncio.create_task(on_summary(job))
            await asyncio.wait({hook, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
            if not hook.done():
                hook.cancel()
                await asyncio.gather(hook, return_exceptions=True)
        if not exit_after_summary:
            echo("\nThe services keep running; Ctrl-C stops everything flk run started.")
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    job.check_services()
        return 0
    except ServiceFailed as exc:
        echo(f"flk run: {exc}")
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await job.stop()


def _has_prometheus() -> bool:
    import shutil

    from tools.infra.alertmanager import alertmanager_binary

    return shutil.which("prometheus") is not None and alertmanager_binary() is not None
