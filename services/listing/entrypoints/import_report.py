"""What `flk listing import` shows a listing administrator: the progress indicator on stderr and the summary."""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import IO

from services.listing.adapters.extract_file import ExtractReader
from services.listing.domain.import_check import (
    ImportReport,
)


class Progress:
    """Rows done, on stderr: a rewritten line on a terminal, a line per step otherwise."""

    def __init__(self, stream: IO[str] | None = None, every: int = 50_000, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self.enabled = enabled
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown = False

    def tick(self, phase: str, rows: int, reader: ExtractReader | None = None) -> None:
        if not self.enabled or rows % self.every:
            return
        total_bytes = reader.size if reader is not None else None
        done_bytes = reader.position() if reader is not None else None
        share = f" ({100 * done_bytes / total_bytes:.0f} %)" if total_bytes and done_bytes is not None else ""
        text = f"{phase}: {rows:,} rows{share}".replace(",", " ")
        if self.terminal:
            self.stream.write(f"\r{text}")
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


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
