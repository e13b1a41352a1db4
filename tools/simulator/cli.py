"""`flk simulate`: run the synthetic region and send its events to Kafka or to files.

    flk simulate --preset small --seed 42 --end-date 2026-06-30 --to files --out /tmp/sim
    flk simulate --preset region --to kafka                      # fast-forward into the broker
    flk simulate --preset small --to kafka --rate 200            # real-time pacing, 200 events/s
    flk simulate --preset national --to null --limit-people 1000000   # generation benchmark

The summary (people, units, doctors, visits, events per type, FLK coverage) goes to stdout at
the end; the progress bar to stderr.
"""
from __future__ import annotations

import sys
import time
from datetime import date, datetime
from pathlib import Path

import click

from tools.simulator.presets import PRESETS


@click.command("simulate")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="small", show_default=True,
              help="small (tests), region (~280 000 people, Västmanland-like), national (~10.5 million).")
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed + preset → identical output.")
@click.option("--end-date", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Last day of the simulated period [default: today]. Give it for reproducible output.")
@click.option("--to", "sink", type=click.Choice(["kafka", "files", "null"]), default="kafka", show_default=True,
              help="kafka: publish; files: JSONL + CSV into --out; null: generate only (benchmark).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder for --to files.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="Kafka: at most N events/s (real-time pacing) [default: fast-forward].")
@click.option("--topic-prefix", default=None, help="Kafka topic prefix [default: FLK_TOPIC_PREFIX].")
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers [default: FLK_KAFKA_BOOTSTRAP].")
@click.option("--limit-people", type=click.IntRange(min=1),
              help="Simulate only N people (units and staff scale with them).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: if a terminal].")
def simulate(preset: str, seed: int, end_date: datetime | None, sink: str, out: Path | None, rate: float | None,
             topic_prefix: str | None, bootstrap: str | None, limit_people: int | None,
             progress: bool | None) -> None:
    """Simulate a region: roster, population, ACG, SÄBO, listing commands and visits."""
    from tools.simulator.generate import Simulation
    from tools.simulator.sinks import Progress, consume, publish, write_files

    if sink == "files" and out is None:
        raise click.UsageError("--to files needs --out DIR")
    if rate is not None and sink != "kafka":
        raise click.UsageError("--rate applies to --to kafka")
    sim = Simulation(preset, seed=seed, end_date=end_date.date() if end_date else date.today(),
                     limit_people=limit_people)
    bar = Progress(sim, enabled=sys.stderr.isatty() if progress is None else progress)
    started = time.monotonic()
    if sink == "files":
        assert out is not None
        write_files(sim, out, bar)
    elif sink == "null":
        consume(sim, bar)
    else:
        import asyncio

        from flk.settings import PlatformSettings

        platform = PlatformSettings()
        asyncio.run(publish(sim, bootstrap or platform.kafka_bootstrap,
                            platform.topic_prefix if topic_prefix is None else topic_prefix, rate, progress=bar,
                            connection=platform.kafka_connection()))
    bar.done()
    elapsed = time.monotonic() - started
    _print_summary(sim, elapsed, sink, out)


def _print_summary(sim, elapsed: float, sink: str, out: Path | None) -> None:
    summary = sim.summary.as_dict()
    total = sum(summary["events"].values())
    contract = sum(n for t, n in summary["events"].items() if not t.startswith("sim."))
    echo = click.echo
    echo(f"preset {summary['preset']} seed {summary['seed']}: {summary['start']} – {summary['end']}, "
         f"{summary['areas']} area(s)")
    echo(f"people: {summary['people_registered']:,} registered, {summary['people_at_end']:,} at the end")
    echo(f"units: {summary['units']:,}; doctors: {summary['doctors']:,} roles ({summary['doctors_left']:,} left); "
         f"other staff: {summary['other_staff']:,}")
    echo(f"visits: {summary['visits']:,} ({summary['visits_cancelled']:,} later cancelled)")
    for name, key in (("start", "coverage_at_start"), ("end", "coverage_at_end")):
        c = summary[key]
        echo(f"coverage at {name}: named FLK {_pct(c['named_flk_of_population'])} of population "
             f"({_pct(c['named_flk_of_listed'])} of listed), fictive lists {_pct(c['fictive_of_listed'])}, "
             f"SÄBO {_pct(c['sabo_share'])} (FLK {_pct(c['sabo_named_flk'])}), "
             f"RUB 4–5 with FLK {_pct(c['rub45_named_flk'])}")
    echo("events:")
    for event_type, n in summary["events"].items():
        echo(f"  {event_type:34s} {n:>12,}")
    echo(f"{contract:,} contract events ({total:,} items) in {elapsed:.1f} s = {total / max(elapsed, 1e-9):,.0f} items/s"
         + (f" → {out}" if sink == "files" else f" → {sink}"))
    p3 = summary["guardian_consent"]
    if p3["one_guardian_requests"]:
        echo(f"minors' listing requests by one of two guardians (P3): {p3['one_guardian_requests']:,}; the other "
             f"consented {p3['consents']:,}, refused {p3['refusals']:,}, did not answer {p3['unanswered']:,}")
    if summary["extract_violations"]:
        echo("listing extract violations (deliberate): "
             + ", ".join(f"{k} {v}" for k, v in summary["extract_violations"].items()))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"
