"""What `flk listing import` shows a listing administrator: the progress indicator on stderr and the summary."""
from __future__ import annotations

import io
from pathlib import Path
from typing import IO

from flk.progress import StatusLine
from services.listing.adapters.extract_file import ExtractReader
from services.listing.domain.import_check import (
    ImportReport,
)


class Progress:
    """Rows done, on stderr (flk.progress): a live line with the share of the file read on a terminal,
    a plain line every ``every`` rows otherwise; one line per phase (checking, importing)."""

    def __init__(self, stream: IO[str] | None = None, every: int = 50_000, enabled: bool = True,
                 terminal: bool | None = None) -> None:
        self.every = every
        self.status = StatusLine(enabled=enabled, stream=stream, terminal=terminal, bar=True, log_every_s=0)

    def tick(self, phase: str, rows: int, reader: ExtractReader | None = None) -> None:
        step = min(self.every, 1_000) if self.status.terminal else self.every  # a terminal: redrawn when due
        if not self.status.enabled or rows % step:
            return
        total_bytes = reader.size if reader is not None else None
        done_bytes = reader.position() if reader is not None else None
        fraction = done_bytes / total_bytes if total_bytes and done_bytes is not None else None
        share = f" ({100 * fraction:.0f} %)" if fraction is not None and not self.status.terminal else ""
        self.status.update(f"{phase}: {rows:,} rows{share}".replace(",", " "), fraction)

    def done(self) -> None:
        self.status.close()


def render_summary(report: ImportReport, path: Path, shown_lines: int = 20) -> str:
    """The summary for a listing administrator: counts, and per problem its rule, what happened to
    the rows and their line numbers (never a person id)."""
    out = io.StringIO()
    mode = "DRY RUN — nothing was written" if report.dry_run else "imported in one transaction"
    would = "would import" if report.dry_run else "imported"
    out.write(f"Listing import of {path.name}: profile {report.profile}, as of {report.as_of.isoformat()} ({mode})\n")
    out.write(f"  rows read: {report.rows} ({'with' if report.header else 'no'} header), persons: {report.persons}\n")
    out.write(f"  {would}: {report.listings_started} listings, {report.named_assigned} named fast läkarkontakt, "
              f"{report.fictive_assigned} fictive-list placements, {report.persons_created} new persons\n")
    out.write(f"  already in the register (unchanged): {report.already_registered} rows\n")
    if not report.dry_run:
        out.write(f"  outbox events written: {report.outbox_events} (published to listing.events.v1 by the relay)\n")
    if not report.findings and not report.over_capacity:
        out.write("  no rule violations\n")
        return out.getvalue()
    out.write(f"Violations ({report.violations}):\n")
    for f in sorted(report.findings.values(), key=lambda f: (f.rule_id or "~", f.code)):
        rule = f.rule_id or "--"
        persons = f", {f.persons} persons" if f.persons else ""
        out.write(f"  [{rule}] {f.code}: {f.rows} rows{persons} — {f.outcome}\n")
        out.write(f"       {f.message_en}\n")
        lines = ", ".join(str(n) for n in f.lines[:shown_lines])
        more = f" … (+{f.rows - min(shown_lines, len(f.lines))} more)" if f.rows > shown_lines else ""
        out.write(f"       lines: {lines}{more}\n")
    if report.over_capacity:
        out.write(f"  [F6] over_capacity: {len(report.over_capacity)} lists above capacity (a warning, not a block)\n")
        for o in report.over_capacity[:shown_lines]:
            basis = {"individual": "individually agreed", "specialist_benchmark": f"1 100 × {o.fte} FTE",
                     "st_benchmark": f"ST 550 × {o.fte} FTE"}.get(o.basis, o.basis)
            out.write(f"       list {o.list_id} ({o.practitioner_id} at {o.care_unit_id}): "
                      f"{o.list_size} patients vs capacity {o.capacity} ({basis})\n")
        if len(report.over_capacity) > shown_lines:
            out.write(f"       … (+{len(report.over_capacity) - shown_lines} more lists)\n")
    return out.getvalue()
