"""Reading a region's listing extract: the CSV file format (delimiter sniffing, header names and their
aliases, positional columns without a header) and a streaming reader with its byte position."""
from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

COLUMNS: tuple[str, ...] = ("person_id", "care_unit_id", "practitioner_id", "employment_type")
REQUIRED_COLUMNS = frozenset({"person_id", "care_unit_id"})

#: header names accepted for each column (case-insensitive)
COLUMN_ALIASES: Mapping[str, str] = {
    "person_id": "person_id", "personnummer": "person_id", "pnr": "person_id",
    "care_unit_id": "care_unit_id", "unit_hsa_id": "care_unit_id", "vardenhet_hsa_id": "care_unit_id",
    "practitioner_id": "practitioner_id", "doctor_hsa_id": "practitioner_id", "lakare_hsa_id": "practitioner_id",
    "employment_type": "employment_type", "anstallningsform": "employment_type",
}

def sniff_delimiter(first_line: str) -> str:
    """``;`` when the first line uses it and not ``,`` (Swedish spreadsheet exports), else ``,``."""
    return ";" if ";" in first_line and "," not in first_line else ","


def header_columns(fields: Sequence[str]) -> dict[str, int] | None:
    """Column positions if ``fields`` is a header row, else None (a data row).

    Raises ValueError when it is a header that lacks a required column.
    """
    names = [COLUMN_ALIASES.get(f.strip().lstrip("\ufeff").casefold()) for f in fields]
    if not any(names):
        return None
    positions: dict[str, int] = {}
    for index, name in enumerate(names):
        if name is not None and name not in positions:
            positions[name] = index
    missing = REQUIRED_COLUMNS - positions.keys()
    if missing:
        raise ValueError(f"the header lacks the column(s) {', '.join(sorted(missing))}")
    return positions


POSITIONAL = {name: index for index, name in enumerate(COLUMNS)}


@dataclass
class ExtractReader:
    """Streams (line number, fields) of the extract; header detected on the first row."""

    path: Path
    encoding: str = "utf-8-sig"

    def __post_init__(self) -> None:
        self.header = False
        self.columns: dict[str, int] = dict(POSITIONAL)
        self.size = self.path.stat().st_size

    def position(self) -> int:
        """Bytes read so far (for the progress indicator)."""
        raw = getattr(self, "_raw", None)
        return raw.buffer.tell() if raw is not None and not raw.closed else self.size

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line, fields). Blank lines are skipped."""
        with self.path.open("r", encoding=self.encoding, newline="") as raw:
            self._raw = raw
            first = raw.readline()
            raw.seek(0)
            reader = csv.reader(raw, delimiter=sniff_delimiter(first))
            first_row = True
            for fields in reader:
                if not fields or all(not f.strip() for f in fields):
                    continue
                if first_row:
                    first_row = False
                    columns = header_columns(fields)
                    if columns is not None:
                        self.header, self.columns = True, columns
                        continue
                yield reader.line_num, fields
