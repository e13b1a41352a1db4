"""`flk continuity indices --engine polars`: the batch baseline, vectorised with Polars.

The pure per-patient functions (``services.continuity.domain.patient``) stay the reference; this
module computes the same JSON lines from the same two files, and the property tests
(tests/unit/continuity/test_continuity_batch_engines.py) hold it to byte-equal output.

How each rule of the pure path is kept:

* **Reading** — a file the engine cannot read exactly as Python's ``csv`` module does is handed back
  to the pure engine whole (:class:`Unsupported`, the reason is printed): a double quote anywhere, a
  NUL byte, a carriage return not followed by a line feed, text that is not UTF-8, a header that lacks
  a required column.  Otherwise every physical line is a row split on commas, which is what ``csv``
  does without quotes, so line numbers and the arrival order (``seq``) are the pure path's.  A block
  of lines that all have exactly the header's number of fields is read by Polars' CSV reader (on all
  cores); any other block is split line by line.
* **Bad rows** — a row that any vectorised check cannot vouch for (too few fields, an empty required
  cell, a bad cancel reason, a patient id that is not a key or a valid personnummer, a time that does
  not parse, a blank row) goes through the pure row parser (``visit_extract.parse_row``): it gives the
  reason, reported with the line number exactly as before, or it accepts the row, which then counts as
  any other.
* **Codes** — patient ids (pseudonymisation), professions (doctor/total flags), contact types, cancel
  reasons, practitioner and unit ids and times of an unusual shape (an offset, fractions of a second, a
  week date, …) are mapped through the pure functions (with ``str.strip()``) once per distinct cell
  text; only ``YYYY-MM-DD`` and ``YYYY-MM-DD[T ]HH:MM[:SS]`` (local wall-clock time) are parsed by
  Polars, and only when the fields are in range.
* **Per-patient state** — the pure state keeps the first row per visit id among the rows that can
  count (profession, contact type) and are dated after the window start; later rows with that id are
  ignored even when the first is after *as of*.  Cancelled rows are left out but give the patient a
  line.  Counted are visits with ``start < date <= as of`` at the listing unit (scope
  ``listing-unit`` and listed) or anywhere, in (time to the second, line) order.
* **Indices** — the same integer sums as :func:`~services.continuity.domain.indices.index_set`
  (n, Σ n_i², max n_i, distinct providers, same-provider consecutive pairs, visits with an FLK) and
  the same floating-point operations in the same order, so every float is bit-identical.
* **Memory** — only the rows that may count are kept, as integer codes (patient, practitioner, unit)
  and the visit id.  A file larger than :data:`PARTITION_BYTES` is processed in patient partitions:
  each block's kept rows are spilled to a temporary Arrow file per partition (``patient % K``), and the
  partitions are deduplicated and summed one at a time, so the peak memory is about one block and one
  partition, whatever the size of the extract.

One documented difference: the pure state deduplicates on a 64-bit digest of the visit id, this
engine on the id itself; two different ids of one patient with the same digest (probability about
k²/2⁶⁵ for a patient with k visits) would count once there and twice here.
"""
from __future__ import annotations

import codecs
import tempfile
from contextlib import nullcontext
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

import polars as pl

from services.continuity.adapters.json_lines import JsonLines
from services.continuity.adapters.visit_extract import (
    CANCEL_REASONS,
    REQUIRED_COLUMNS,
    BadRow,
    ExtractVisit,
    PatientKeys,
    parse_row,
    parse_time,
)
from services.continuity.domain.indices import IndexSet
from services.continuity.domain.patient import (
    COUNTS_FOR_DOCTOR,
    COUNTS_FOR_TOTAL,
    SECONDS_PER_DAY,
    PatientIndices,
    counts_for,
    visit_stamp,
)
from services.continuity.domain.settings import (
    ContinuitySettings,
    Scope,
    normalise_code,
)
from services.continuity.domain.window import window_bounds

__all__ = ["Unsupported", "VisitTotals", "compute_indices_polars"]

#: Exactly the characters ``str.strip()`` removes (those with ``str.isspace()``; a unit test checks
#: the list), for Polars' ``strip_chars``, whose own default differs (it keeps U+001C..U+001F).
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_CLASS = "[" + "".join(f"\\x{{{ord(c):X}}}" for c in PY_WHITESPACE) + "]"
#: A value with a character ``str.strip()`` removes at either end.
_EDGE_SPACE = f"^{_SPACE_CLASS}|{_SPACE_CLASS}$"
#: ``date.toordinal()`` of 1970-01-01 (Polars dates count days from it).
EPOCH_ORDINAL = 719_163
BLOCK_BYTES = 64 << 20
#: A visit file larger than this is processed in patient partitions of about this size (spilled to a
#: temporary directory), so memory stays bounded.
PARTITION_BYTES = 512 << 20
#: The shapes Polars parses: YYYY-MM-DD, optionally with [T ]HH:MM[:SS] (local wall-clock time).
_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?$"


class Unsupported(Exception):
    """The file needs the pure engine (the message says why)."""


@dataclass
class VisitTotals:
    """What the CLI's summary line reports."""

    rows: int = 0
    cancelled: int = 0


# --------------------------------------------------------------------------- reading


def _blocks(path: Path) -> Iterator[bytes]:
    """The file in blocks of whole lines (the BOM removed), checked for what only ``csv`` reads right."""
    with path.open("rb") as handle:
        first = True
        while True:
            block = handle.read(BLOCK_BYTES)
            if not block:
                return
            if not block.endswith(b"\n"):
                block += handle.readline()
            if first:
                first = False
                block = block.removeprefix(codecs.BOM_UTF8)
            if b'"' in block:
                raise Unsupported("the file has double quotes")
            if b"\x00" in block:
                raise Unsupported("the file has a NUL byte")
            if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
                raise Unsupported("the file has a carriage return that does not end a line")
            yield block


def _fields(block: bytes, first_line: int, width: int) -> pl.DataFrame:
    """One row per physical line: ``line`` (its 1-based number) and its first ``width`` fields ``f0`` …
    ``f{width-1}`` (null where a short row has no such field).

    A block in which every line has exactly ``width`` fields (as many commas as that makes, and no line
    with more, which Polars' reader refuses) is read by Polars' CSV reader, quotes off (there are none),
    on all cores; any other block is split line by line here, and keeps each line's ``text``.
    """
    lines = block.count(b"\n") + (not block.endswith(b"\n"))
    if block.count(b",") == lines * (width - 1):
        try:
            frame = pl.read_csv(
                block, has_header=False, quote_char=None, empty_string_is_null=False,
                schema={f"f{i}": pl.String for i in range(width)},
                row_index_name="line", row_index_offset=first_line,
            )
        except pl.exceptions.PolarsError:  # a line with more fields, or text that is not UTF-8
            pass
        else:
            if frame.height == lines:
                return frame.with_columns(pl.col("line").cast(pl.Int64))
    parts = block.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    try:
        text = pl.Series("text", parts, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.InvalidOperationError:
        raise Unsupported("the file is not UTF-8") from None
    frame = pl.DataFrame({"line": pl.int_range(first_line, first_line + len(parts), eager=True), "text": text})
    frame = frame.with_columns(pl.col("text").str.strip_suffix("\r"))
    # split_exact gives the first `width` fields, null where a row is short (the whole line stays in `text`)
    split = frame.select("line", "text", pl.col("text").str.split_exact(",", width - 1).alias("f")).unnest("f")
    return split.rename({f"field_{i}": f"f{i}" for i in range(width)})


class _Codes:
    """Text values as small integers in order of first appearance (grouping, sorting and joining on them
    is cheaper than on the text, and they take less memory)."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.codes: dict[str, int] = {}

    def code(self, value: str) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
        return code

    def of_cell(self, raw: str) -> int | None:
        value = raw.strip()
        return self.code(value) if value else None


class _Patients(_Codes):
    """Patient keys as codes; a cell is pseudonymised as the pure path does (None: not a patient id)."""

    def __init__(self, keys: PatientKeys) -> None:
        super().__init__()
        self.pseudonymise = keys

    def of_cell(self, raw: str) -> int | None:
        value = raw.strip()
        return self.code(self.pseudonymise(value)) if value else None


class _Mapping:
    """A column's cell texts mapped through a pure function once per distinct text, across blocks: the
    texts already mapped stay in a Polars frame, so a block costs Python only for texts it is the first
    to have."""

    def __init__(self, function: Callable[[str], object], dtype: pl.DataType) -> None:
        self.function = function
        self.dtype = dtype
        self.known = pl.DataFrame(schema={"text": pl.String, "value": dtype})

    def __call__(self, values: pl.Series) -> pl.Series:
        """``values`` mapped (null where the function returns None or raises BadRow; null stays null)."""
        distinct = values.unique().drop_nulls()
        new = distinct.filter(~distinct.is_in(self.known.get_column("text").implode())).to_list()
        if new:
            results = []
            for value in new:
                try:
                    results.append(self.function(value))
                except BadRow:
                    results.append(None)
            self.known = pl.concat([self.known, pl.DataFrame({"text": new, "value": results},
                                                             schema=self.known.schema)])
        return values.replace_strict(self.known.get_column("text"), self.known.get_column("value"),
                                     default=None, return_dtype=self.dtype)


def _stripped(values: pl.Series) -> pl.Series:
    """``str.strip()`` of every value (computed only when some value needs it); null becomes ""."""
    if values.str.contains(_EDGE_SPACE).any():
        values = values.str.strip_chars(PY_WHITESPACE)
    return values.fill_null("")


def _time_stamp(text: str) -> int:
    return visit_stamp(parse_time(text, "occurred_at"))


def _time_checked(text: str) -> bool:
    parse_time(text, "cancelled_at")
    return True


def _stamps(values: pl.Series, odd: _Mapping) -> pl.Series:
    """Of each (stripped) time: seconds (date ordinal × 86 400 + local second of the day); null for ""
    and where the pure parser refuses it.

    ``YYYY-MM-DD[[T ]HH:MM[:SS]]`` with its fields in range is computed here; any other text goes through
    the pure parser (``odd``) once per distinct value.
    """
    col = pl.col("t")
    stamps = values.rename("t").to_frame().select(
        pl.when(
            col.str.contains(_SHAPE)
            & (col.str.slice(0, 4) != "0000")
            & ((col.str.len_bytes() == 10) | (
                (col.str.slice(11, 2).cast(pl.Int64, strict=False) < 24)
                & (col.str.slice(14, 2).cast(pl.Int64, strict=False) < 60)
                & (col.str.slice(17, 2).cast(pl.Int64, strict=False).fill_null(0) < 60)
            ))
        ).then(
            (col.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Int64) + EPOCH_ORDINAL)
            * SECONDS_PER_DAY
            + col.str.slice(11, 2).cast(pl.Int64, strict=False).fill_null(0) * 3600
            + col.str.slice(14, 2).cast(pl.Int64, strict=False).fill_null(0) * 60
            + col.str.slice(17, 2).cast(pl.Int64, strict=False).fill_null(0)
        ).alias("stamp")
    ).to_series()
    unparsed = stamps.is_null() & (values != "")
    if unparsed.any():
        candidates = pl.DataFrame({"v": values, "u": unparsed}).select(pl.when("u").then("v")).to_series()
        stamps = stamps.fill_null(odd(candidates).cast(pl.Int64))
    return stamps


@dataclass
class _Block:
    """What one block gives: the rows that may count, the patients with a good row, the totals."""

    kept: pl.DataFrame
    patients: pl.Series
    rows: int
    cancelled: int


_KEPT_SCHEMA = {
    "line": pl.Int64, "patient": pl.UInt32, "visit_id": pl.String, "practitioner": pl.UInt32,
    "care_unit": pl.UInt32, "stamp": pl.Int64, "flags": pl.Int8,
}


class _Parser:
    """Turns blocks of lines into the rows that may count, with the pure path's rules (see the module)."""

    def __init__(self, columns: dict[str, int], width: int, keys: PatientKeys, settings: ContinuitySettings,
                 lo_stamp: int, report_bad: Callable[[int, str], None]) -> None:
        self.columns = columns
        self.width = width
        self.settings = settings
        self.lo_stamp = lo_stamp
        self.report_bad = report_bad
        self.patients = _Patients(keys)
        self.practitioners = _Codes()
        self.units = _Codes()
        self.patient = _Mapping(self.patients.of_cell, pl.UInt32)
        self.practitioner = _Mapping(self.practitioners.of_cell, pl.UInt32)
        self.unit = _Mapping(self.units.of_cell, pl.UInt32)
        self.flags = _Mapping(lambda p: counts_for(p.strip(), settings) if p.strip() else None, pl.Int8)
        self.type_counts = _Mapping(lambda c: not c.strip() or normalise_code(c.strip()) in settings.contact_types,
                                    pl.Boolean)
        self.reason_ok = _Mapping(lambda r: r.strip() in ("", *CANCEL_REASONS), pl.Boolean)
        self.times = _Mapping(_time_stamp, pl.Int64)
        self.cancel_times = _Mapping(_time_checked, pl.Boolean)

    def _raw(self, fields: pl.DataFrame, name: str) -> pl.Series:
        index = self.columns.get(name)
        if index is None:
            return pl.Series(name, [""] * fields.height, dtype=pl.String)
        return fields.get_column(f"f{index}")

    def parse(self, fields: pl.DataFrame) -> _Block:
        raw = self._raw
        enough = fields.get_column(f"f{len(self.columns) - 1}").is_not_null()
        patient = self.patient(raw(fields, "patient_id"))
        practitioner = self.practitioner(raw(fields, "practitioner_id"))
        unit = self.unit(raw(fields, "care_unit_id"))
        flags = self.flags(raw(fields, "profession"))
        type_counts = self.type_counts(raw(fields, "contact_type"))
        reason_ok = self.reason_ok(raw(fields, "cancel_reason"))
        visit_id = _stripped(raw(fields, "visit_id"))
        stamp = _stamps(_stripped(raw(fields, "occurred_at")), self.times)
        cancelled_at = _stripped(raw(fields, "cancelled_at"))
        cancelled = cancelled_at != ""
        cancel_ok = None
        if cancelled.any():
            refused = _stamps(cancelled_at.filter(cancelled), self.cancel_times).is_null()
            if refused.any():
                lines = fields.get_column("line")
                cancel_ok = ~lines.is_in(lines.filter(cancelled).filter(refused).implode())
        frame = pl.DataFrame([
            fields.get_column("line"), patient.alias("patient"), visit_id.alias("visit_id"),
            practitioner.alias("practitioner"), unit.alias("care_unit"), stamp.alias("stamp"), flags.alias("flags"),
            type_counts.alias("type_counts"), cancelled.alias("cancelled"),
        ])
        checked = (
            enough & reason_ok.fill_null(False) & (visit_id != "")
            & patient.is_not_null() & practitioner.is_not_null() & unit.is_not_null()
            & flags.is_not_null() & stamp.is_not_null()
        )
        if cancel_ok is not None:
            checked = checked & cancel_ok
        good = frame.filter(checked)
        cancelled_rows = int(good.get_column("cancelled").sum())
        rows = frame.height
        extra = self._unchecked(fields.filter(~checked))
        rows -= extra.blank
        cancelled_rows += extra.cancelled
        kept = good.filter(self._may_count()).select(*_KEPT_SCHEMA)
        patients = good.get_column("patient").unique()
        if extra.rows:
            more = pl.DataFrame(extra.rows, schema={**_KEPT_SCHEMA, "type_counts": pl.Boolean, "cancelled": pl.Boolean},
                                orient="row")
            patients = pl.concat([patients, more.get_column("patient")]).unique()
            kept = pl.concat([kept, more.filter(self._may_count()).select(*_KEPT_SCHEMA)]).sort("line")
        return _Block(kept, patients, rows, cancelled_rows)

    def _may_count(self) -> pl.Expr:
        """Rows the pure state stores: not cancelled, counting for an index, after the window start."""
        return ~pl.col("cancelled") & (pl.col("flags") > 0) & pl.col("type_counts") & (pl.col("stamp") >= self.lo_stamp)

    @dataclass
    class _Extra:
        rows: list[tuple]
        blank: int
        cancelled: int

    def _unchecked(self, fields: pl.DataFrame) -> _Parser._Extra:
        """The rows the vectorised checks could not vouch for, through the pure row parser."""
        result = _Parser._Extra([], 0, 0)
        if not fields.height:
            return result
        if "text" not in fields.columns:
            fields = fields.with_columns(
                pl.concat_str([f"f{i}" for i in range(self.width)], separator=",", ignore_nulls=True).alias("text")
            )
        settings = self.settings
        for line, text in fields.select("line", "text").iter_rows():
            cells = text.split(",")
            if all(not cell.strip() for cell in cells):  # csv gives [] for an empty line; blank rows are skipped
                result.blank += 1
                continue
            try:
                row: ExtractVisit = parse_row(cells, self.columns, line, self.patients.pseudonymise, for_events=False)
            except BadRow as exc:
                self.report_bad(line, str(exc))
                continue
            result.cancelled += row.cancelled_at is not None
            result.rows.append((
                line, self.patients.code(row.patient_key), row.visit_id, self.practitioners.code(row.practitioner_id),
                self.units.code(row.care_unit_id), visit_stamp(row.occurred_at), counts_for(row.profession, settings),
                row.contact_type is None or normalise_code(row.contact_type) in settings.contact_types,
                row.cancelled_at is not None,
            ))
        return result


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


class _Partitions:
    """The kept rows by patient partition: in memory (one partition) or spilled to Arrow files."""

    def __init__(self, count: int, directory: Path | None) -> None:
        self.count = count
        self.directory = directory
        self.frames: list[pl.DataFrame] = []
        self.blocks = 0

    def add(self, kept: pl.DataFrame) -> None:
        if self.directory is None:
            self.frames.append(kept)
        else:
            parts = kept.with_columns((pl.col("patient") % self.count).alias("part")).partition_by(
                "part", as_dict=True, include_key=False
            )
            for (part,), frame in parts.items():
                frame.write_ipc(self.directory / f"{part:05d}-{self.blocks:06d}.arrow")
        self.blocks += 1

    def __iter__(self) -> Iterator[pl.DataFrame]:
        """Each partition's kept rows, in line order."""
        if self.directory is None:
            yield pl.concat(self.frames) if self.frames else pl.DataFrame(schema=_KEPT_SCHEMA)
            return
        for part in range(self.count):
            files = sorted(self.directory.glob(f"{part:05d}-*.arrow"))
            if files or part == 0:  # at least one partition, maybe empty
                yield pl.concat([pl.DataFrame(schema=_KEPT_SCHEMA), *(pl.read_ipc(f) for f in files)])
                for f in files:
                    f.unlink()


# --------------------------------------------------------------------------- indices


def _stats(counted: pl.DataFrame, flag: int, prefix: str) -> pl.DataFrame:
    """Per patient: n, Σ n_i², max n_i, distinct providers, same-provider pairs, visits with an FLK.

    ``counted`` is in (patient, time, line) order with ``provider`` an integer code of the practitioner.
    """
    visits = counted.filter((pl.col("flags") & flag) > 0)
    same = (pl.col("provider") == pl.col("provider").shift(1)) & (pl.col("patient") == pl.col("patient").shift(1))
    per_patient = visits.with_columns(same.fill_null(False).alias("same")).group_by("patient").agg(
        pl.len().alias(f"{prefix}n"),
        pl.col("same").sum().alias(f"{prefix}same"),
        pl.col("with_flk").sum().alias(f"{prefix}flk"),
    )
    per_provider = (
        visits.group_by("patient", "provider").agg(pl.len().alias("c"))
        .group_by("patient").agg(
            (pl.col("c").cast(pl.Int64) * pl.col("c")).sum().alias(f"{prefix}sum_sq"),
            pl.col("c").max().alias(f"{prefix}top"),
            pl.len().alias(f"{prefix}m"),
        )
    )
    return per_patient.join(per_provider, on="patient")


def _partition_stats(kept: pl.DataFrame, lo_stamp: int, hi_stamp: int, listing_frame: pl.DataFrame,
                     flk_frame: pl.DataFrame, scope: Scope) -> pl.DataFrame:
    """The per-patient sums of one partition's kept rows (in line order)."""
    # the pure state: the first row per visit id among those that can count and are after the window start
    stored = kept.unique(["patient", "visit_id"], keep="first")  # the first in line order; order not needed
    counted = stored.filter(pl.col("stamp") < hi_stamp)
    if scope is Scope.LISTING_UNIT:
        counted = counted.join(listing_frame, on="patient", how="left").filter(
            pl.col("unit").is_null() | (pl.col("care_unit") == pl.col("unit"))
        )
    counted = (
        counted.join(flk_frame, on=["patient", "practitioner"], how="left")
        .select("patient", "stamp", "line", "flags", pl.col("with_flk").fill_null(0),
                pl.col("practitioner").alias("provider"))
        .sort("patient", "stamp", "line")
    )
    return _stats(counted, COUNTS_FOR_DOCTOR, "d_").join(
        _stats(counted, COUNTS_FOR_TOTAL, "t_"), on="patient", how="full", coalesce=True
    )


def _index_set(n: int | None, same: int, flk: int, sum_sq: int, top: int, m: int, has_flk: bool,
               min_visits: int) -> IndexSet:
    """:func:`index_set` from its sums, with the same operations (so the same floats)."""
    if not n:
        return IndexSet(0, None, None, None, None, None, None, min_visits <= 0)
    if n >= 2:
        c_o_c = (sum_sq - n) / (n * (n - 1))
        s = same / (n - 1)
    else:
        c_o_c = s = None
    return IndexSet(
        n, c_o_c, top / n, s, sum_sq / (n * n), (1 - m / (n + 0.1)) / (1 - 1 / (n + 0.1)),
        flk / n if has_flk else None, n >= min_visits,
    )


def compute_indices_polars(
    visits_path: Path,
    listings: dict[str, tuple[str, frozenset[str]]],
    as_of: date,
    settings: ContinuitySettings,
    keys: PatientKeys,
    out: IO[bytes],
    report_bad: Callable[[int, str], None],
    progress: Callable[[int, int], None] = lambda rows, patients: None,
) -> tuple[VisitTotals, int]:
    """Write the JSON lines of ``flk continuity indices``; (totals, patients).

    ``listings`` maps a patient id to its listing unit and fast läkarkontakt(er), as read by the
    CLI.  ``progress`` gets (rows, patients so far) after each block and at the end.  Raises
    :class:`Unsupported` before anything is written or reported when the file needs the pure engine.
    """
    lo, hi = window_bounds(as_of, settings.window_months)
    lo_stamp, hi_stamp = (lo + 1) * SECONDS_PER_DAY, (hi + 1) * SECONDS_PER_DAY
    bad: list[tuple[int, str]] = []
    blocks = _blocks(visits_path)
    try:
        first = next(blocks)
    except StopIteration:
        raise Unsupported("the file is empty") from None
    header_end = first.find(b"\n")
    header = (first if header_end < 0 else first[:header_end]).rstrip(b"\r")
    try:
        names = [name.strip().lower() for name in header.decode("utf-8").split(",")]
    except UnicodeDecodeError:
        raise Unsupported("the file is not UTF-8") from None
    columns = {name: i for i, name in enumerate(names)}
    if any(c not in columns for c in REQUIRED_COLUMNS):
        raise Unsupported("the header lacks required columns")
    parser = _Parser(columns, len(names), keys, settings, lo_stamp, lambda line, reason: bad.append((line, reason)))
    count = -(-visits_path.stat().st_size // PARTITION_BYTES)
    totals = VisitTotals()
    seen: list[pl.Series] = []
    with tempfile.TemporaryDirectory(prefix="flk-continuity-") if count > 1 else nullcontext() as spill:
        partitions = _Partitions(count, Path(spill) if spill else None)
        line = 2
        for block in _chain(first[header_end + 1:] if header_end >= 0 else b"", blocks):
            fields = _fields(block, line, len(names))
            line += fields.height
            parsed = parser.parse(fields)
            del fields
            totals.rows += parsed.rows
            totals.cancelled += parsed.cancelled
            seen.append(parsed.patients)
            partitions.add(parsed.kept)
            progress(totals.rows, len(parser.patients.values))
        codes = parser.patients
        listed = [codes.code(p) for p in listings]
        listing_frame = pl.DataFrame(
            {"patient": listed, "unit": [parser.units.code(u) for u, _ in listings.values()]},
            schema={"patient": pl.UInt32, "unit": pl.UInt32},
        )
        flk_frame = pl.DataFrame(
            [(code, parser.practitioners.code(f)) for code, (_, flks) in zip(listed, listings.values()) for f in flks],
            schema={"patient": pl.UInt32, "practitioner": pl.UInt32}, orient="row",
        ).with_columns(pl.lit(1, dtype=pl.Int64).alias("with_flk"))
        stats = pl.concat([
            _partition_stats(kept, lo_stamp, hi_stamp, listing_frame, flk_frame, settings.scope)
            for kept in partitions
        ])
    for line_number, reason in bad:
        report_bad(line_number, reason)
    everyone = set(pl.concat(seen).to_list()) if seen else set()
    everyone.update(listed)
    progress(totals.rows, len(everyone))
    _write(stats, everyone, codes.values, listings, as_of, settings.min_visits, out)
    return totals, len(everyone)


def _write(stats: pl.DataFrame, everyone: set[int], keys: list[str], listings: dict[str, tuple[str, frozenset[str]]],
           as_of: date, min_visits: int, out: IO[bytes]) -> None:
    """One JSON line per patient, sorted by patient key (what the pure engine writes)."""
    columns = [f"{prefix}{k}" for prefix in ("d_", "t_") for k in ("n", "same", "flk", "sum_sq", "top", "m")]
    by_patient = dict(zip(stats.get_column("patient").to_list(), stats.select(columns).iter_rows()))
    none = IndexSet(0, None, None, None, None, None, None, min_visits <= 0)
    no_listing = (None, ())
    lines = JsonLines(out)
    for code in sorted(everyone, key=keys.__getitem__):
        patient = keys[code]
        row = by_patient.get(code)
        if row is None:
            doctor = total = none
        else:
            has_flk = bool(listings.get(patient, no_listing)[1])
            doctor = none if row[0] is None else _index_set(*row[:6], has_flk, min_visits)
            total = none if row[6] is None else _index_set(*row[6:], has_flk, min_visits)
        lines.write({"patient_id": patient, **PatientIndices(as_of, doctor, total).to_json_dict()})
    lines.close()
