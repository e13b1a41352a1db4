"""A region's visit extract (CSV): what `flk ehr import` publishes and `flk continuity indices` reads.

Columns (header row required, names case-insensitive, any order)::

    patient_id, visit_id, practitioner_id, profession, care_unit_id, occurred_at   required
    contact_type                  besok | telefon | digital | hembesok (required by the import;
                                  the baseline CLI takes any, and counts a visit without one)
    cancelled_at                  empty, or when the visit was cancelled / entered in error
    cancel_reason                 cancelled | entered_in_error | no_show (default entered_in_error)
    source_system                 e.g. cosmic, takecare, melior

``patient_id`` is a pseudonymous patient key (``pk1_…``) or a personnummer / samordningsnummer,
which is turned into the patient key with the deployment's pseudonym key (``FLK_PSEUDONYM_KEY``),
as the listing import does; the number itself goes no further than this module and no message
repeats it. ``occurred_at`` is an ISO date (the visit sorts at 00:00 that day) or date-time; a
date-time without an offset is Swedish local time.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from flk.security.pseudonym import InvalidPersonId, PersonId, is_patient_key, parse_person_id, patient_keyer

REQUIRED_COLUMNS = ("patient_id", "visit_id", "practitioner_id", "profession", "care_unit_id", "occurred_at")
OPTIONAL_COLUMNS = ("contact_type", "cancelled_at", "cancel_reason", "source_system")
CONTACT_TYPES = ("besok", "telefon", "digital", "hembesok")
CANCEL_REASONS = ("cancelled", "entered_in_error", "no_show")
LOCAL_ZONE = ZoneInfo("Europe/Stockholm")
#: 10 or 12 digits with an optional '-' or '+' before the last four: shaped like a personnummer
_PERSON_NUMBER_SHAPE = re.compile(r"^(?:\d{6}|\d{8})[-+]?\d{4}$")


class BadRow(ValueError):
    """A row that cannot be used; the message is the reason (never a patient identifier)."""


class MissingColumns(ValueError):
    """The header lacks required columns (the message names them)."""


@dataclass(frozen=True, slots=True)
class ExtractVisit:
    """One row of the extract, checked and with the patient pseudonymised."""

    line: int
    patient_key: str
    visit_id: str
    practitioner_id: str
    profession: str
    care_unit_id: str
    occurred_at: datetime  #: aware
    contact_type: str | None
    cancelled_at: datetime | None  #: aware
    cancel_reason: str
    source_system: str | None


class PatientKeys:
    """patient_id → patient key. Keys pass through; person numbers are pseudonymised with the key that
    is loaded only when the first one appears (``load_key`` returns the secret's bytes)."""

    def __init__(self, load_key: Callable[[], bytes], *, keep_other_ids: bool = False) -> None:
        self._load_key = load_key
        self._key_of: Callable[[PersonId], str] | None = None
        self.keep_other_ids = keep_other_ids  #: the baseline CLI's own test ids ("p1") pass through
        self.pseudonymised = 0

    def __call__(self, raw: str) -> str:
        if is_patient_key(raw):
            return raw
        if _PERSON_NUMBER_SHAPE.match(raw.replace(" ", "")):
            try:
                person = parse_person_id(raw)
            except InvalidPersonId:
                raise BadRow("patient_id is not a valid personnummer or samordningsnummer") from None
            if self._key_of is None:
                self._key_of = patient_keyer(self._load_key())
            self.pseudonymised += 1
            return self._key_of(person)
        if self.keep_other_ids:
            return raw
        raise BadRow("patient_id is neither a patient key (pk1_…) nor a personnummer/samordningsnummer")


def platform_pseudonym_key() -> bytes:
    from flk.settings import PlatformSettings

    return PlatformSettings().pseudonym_key.get_secret_value().encode()


def header_columns(names: list[str], path: Path) -> dict[str, int]:
    columns = {name.strip().lower(): i for i, name in enumerate(names)}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise MissingColumns(f"{path} lacks columns: {', '.join(missing)}")
    return columns


@lru_cache(maxsize=4096)
def parse_time(text: str, name: str) -> datetime:
    """An ISO date (→ 00:00 Swedish time) or date-time (no offset → Swedish time), made aware."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), LOCAL_ZONE)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRow(f"bad {name} {text!r}: not an ISO date or date-time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=LOCAL_ZONE)


def _cell(row: list[str], columns: dict[str, int], name: str, required: bool = True) -> str | None:
    index = columns.get(name)
    value = row[index].strip() if index is not None and index < len(row) else ""
    if not value:
        if required:
            raise BadRow(f"empty {name}")
        return None
    return value


def parse_row(row: list[str], columns: dict[str, int], line: int, keys: PatientKeys, *,
              for_events: bool) -> ExtractVisit:
    """One data row. ``for_events``: the row must make a contract event (a contact type of the
    contract's, required); otherwise (the baseline CLI) any contact type passes and the measure's
    settings decide whether it counts."""
    if len(row) < len(columns):
        raise BadRow(f"expected {len(columns)} fields, got {len(row)}")
    contact_type = _cell(row, columns, "contact_type", required=for_events)
    if contact_type is not None and for_events:
        contact_type = contact_type.casefold().replace("ö", "o")  # 'Besök' → 'besok'
        if contact_type not in CONTACT_TYPES:
            raise BadRow(f"contact_type must be one of {', '.join(CONTACT_TYPES)}")
    cancelled = _cell(row, columns, "cancelled_at", required=False)
    reason = _cell(row, columns, "cancel_reason", required=False) or "entered_in_error"
    if reason not in CANCEL_REASONS:
        raise BadRow(f"cancel_reason must be one of {', '.join(CANCEL_REASONS)}")
    return ExtractVisit(
        line=line,
        patient_key=keys(_cell(row, columns, "patient_id")),
        visit_id=_cell(row, columns, "visit_id"),
        practitioner_id=_cell(row, columns, "practitioner_id"),
        profession=_cell(row, columns, "profession"),
        care_unit_id=_cell(row, columns, "care_unit_id"),
        occurred_at=parse_time(_cell(row, columns, "occurred_at"), "occurred_at"),
        contact_type=contact_type,
        cancelled_at=parse_time(cancelled, "cancelled_at") if cancelled else None,
        cancel_reason=reason,
        source_system=_cell(row, columns, "source_system", required=False),
    )


def read_extract(path: Path, keys: PatientKeys, *, for_events: bool
                 ) -> Iterator[tuple[int, ExtractVisit | BadRow]]:
    """(line number, the row or why it is bad) for every non-blank data row, in file order.

    Raises :class:`MissingColumns` before the first row when the header lacks a required column.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            columns = header_columns(next(reader), path)
        except StopIteration:
            raise MissingColumns(f"{path} is empty (no header row)") from None
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            line = reader.line_num
            try:
                yield line, parse_row(row, columns, line, keys, for_events=for_events)
            except BadRow as exc:
                yield line, exc


def iso(value: datetime) -> str:
    """RFC 3339 as the contracts want it: seconds, 'Z' for UTC."""
    text = value.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text
