"""Onboarding a region from its visit history: extract rows → ordinary visit events, and the summary.

Each row becomes a ``visit.recorded.v1`` on ``ehr.visits.v1`` (and a cancelled row a
``visit.cancelled.v1`` right after it), exactly as the EHR would have published them, dated with
their own times. Event ids are derived from the source system, the visit id and the event type,
so importing the same extract again publishes events a consumer has already seen: the
continuity worker ignores a known visit id (and a cancelled one stays cancelled), and any
consumer with an inbox drops the same id. Publishing goes through a ``send(batch)`` callable so
the whole path is testable without a broker.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from flk.events.contracts import ContractViolation
from flk.events.envelope import OutgoingRecord, derived_id, make_record
from services.continuity.adapters.visit_extract import BadRow, ExtractVisit, iso

SOURCE = "flk/ehr-import"


def visit_events(row: ExtractVisit) -> list[OutgoingRecord]:
    """The events of one extract row (checked against their contracts: a violation is a bad row)."""
    system = row.source_system or "extract"
    data = {"visit_id": row.visit_id, "patient_key": row.patient_key, "practitioner_id": row.practitioner_id,
            "profession": row.profession, "care_unit_id": row.care_unit_id, "contact_type": row.contact_type,
            "occurred_at": iso(row.occurred_at)}
    if row.source_system:
        data["source_system"] = row.source_system
    try:
        records = [make_record("visit.recorded.v1", data, source=SOURCE, time=row.occurred_at,
                               event_id=derived_id("visit.recorded.v1", system, row.visit_id))]
        if row.cancelled_at is not None:
            records.append(make_record(
                "visit.cancelled.v1",
                {"visit_id": row.visit_id, "patient_key": row.patient_key, "cancelled_at": iso(row.cancelled_at),
                 "reason": row.cancel_reason},
                source=SOURCE, time=row.cancelled_at,
                event_id=derived_id("visit.cancelled.v1", system, row.visit_id)))
    except ContractViolation as exc:
        raise BadRow(str(exc).replace("data.", "", 1)) from None
    return records


@dataclass
class ImportSummary:
    rows: int = 0
    visits: int = 0
    cancelled: int = 0
    bad: int = 0
    published: int = 0
    first_day: date | None = None
    last_day: date | None = None
    _patients: set[str] = field(default_factory=set, repr=False)

    @property
    def patients(self) -> int:
        return len(self._patients)

    def add(self, row: ExtractVisit) -> None:
        self.visits += 1
        self.cancelled += row.cancelled_at is not None
        self._patients.add(row.patient_key)
        day = row.occurred_at.date()
        if self.first_day is None or day < self.first_day:
            self.first_day = day
        if self.last_day is None or day > self.last_day:
            self.last_day = day


async def import_rows(
    rows: Iterable[tuple[int, ExtractVisit | BadRow]],
    send: Callable[[list[OutgoingRecord]], Awaitable[None]] | None,
    *,
    on_bad_row: Callable[[int, str], None],
    on_progress: Callable[[ImportSummary], None] = lambda s: None,
    batch_size: int = 2_000,
) -> ImportSummary:
    """Turn every row into events and ``send`` them in batches (``send`` None: a dry run that checks
    every row against the contracts and publishes nothing). Bad rows are reported and skipped."""
    summary = ImportSummary()
    batch: list[OutgoingRecord] = []
    for line, row in rows:
        summary.rows += 1
        try:
            if isinstance(row, BadRow):
                raise row
            records = visit_events(row)
        except BadRow as exc:
            summary.bad += 1
            on_bad_row(line, str(exc))
            continue
        summary.add(row)
        if send is not None:
            batch.extend(records)
            if len(batch) >= batch_size:
                await send(batch)
                summary.published += len(batch)
                batch = []
        on_progress(summary)
    if batch and send is not None:
        await send(batch)
        summary.published += len(batch)
    return summary
