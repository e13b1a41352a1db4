"""`flk continuity indices --engine polars`: the batch baseline, vectorised with Polars.

The pure per-patient functions (``services.continuity.domain.patient``) stay the reference; this
module computes the same JSON lines from the same two files, and the property tests
(tests/unit/continuity/test_continuity_batch_engines.py) hold it to byte-equal output.

How each rule of the pure path is kept:

* **Reading** — a file the engine cannot read exactly as Python's ``csv`` module does is handed back
  to the pure engine whole (:class:`Unsupported`, the reason is printed): a double quote anywhere, a
  NUL byte, a carriage return not followed by a line feed, text that is not UTF-8, a header that lacks
  a required column.  Otherwise every physical line is a row split on commas, which is what ``csv``
  does without quotes, so line numbers and the arrival order (``seq``) are the pure path's.
* **Bad rows** — a row that any vectorised check cannot vouch for (too few fields, an empty required
  cell, a bad cancel reason, a patient id that is not a key or a valid personnummer, a time that does
  not parse) goes through the pure row parser (``visit_extract.parse_row``): it gives the reason,
  reported with the line number exactly as before, or it accepts the row, which then counts as any other.
* **Codes** — patient ids (pseudonymisation), professions (doctor/total flags), contact types and
  times of an unusual shape (an offset, fractions of a second, a week date, …) are mapped through the
  pure functions once per distinct value; only ``YYYY-MM-DD`` and ``YYYY-MM-DD[T ]HH:MM[:SS]`` (local
  wall-clock time) are parsed by Polars, and only when the fields are in range.
* **Per-patient state** — the pure state keeps the first row per visit id among the rows that can
  count (profession, contact type) and are dated after the window start; later rows with that id are
  ignored even when the first is after *as of*.  Cancelled rows are left out but give the patient a
  line.  Counted are visits with ``start < date <= as of`` at the listing unit (scope
  ``listing-unit`` and listed) or anywhere, in (time to the second, line) order.
* **Indices** — the same integer sums as :func:`~services.continuity.domain.indices.index_set`
  (n, Σ n_i², max n_i, distinct providers, same-provider consecutive pairs, visits with an FLK) and
  the same floating-point operations in the same order, so every float is bit-identical.

One documented difference: the pure state deduplicates on a 64-bit digest of the visit id, this
engine on the id itself; two different ids of one patient with the same digest (probability about
k²/2⁶⁵ for a patient with k visits) would count once there and twice here.
"""
from __future__ import annotations

import codecs
import re
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
    counts_for,
    COUNTS_FOR_DOCTOR,
    COUNTS_FOR_TOTAL,
    SECONDS_PER_DAY,
    PatientIndices,
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
#: ``date.toordinal()`` of 1970-01-01 (Polars dates count days from it).
EPOCH_ORDINAL = 719_163
BLOCK_BYTES = 64 << 20
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


def _lines(block: bytes, first_line: int) -> pl.DataFrame:
    """One row per physical line: ``line`` (1-based number) and ``text`` (without its line end)."""
    parts = block.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    try:
        text = pl.Series("text", parts, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.InvalidOperationError:
        raise Unsupported("the file is not UTF-8") from None
    return pl.DataFrame({"line": pl.int_range(first_line, first_line + len(parts), eager=True), "text": text}).with_columns(
        pl.col("text").str.strip_suffix("\r")
    )


def _mapped(
    column: pl.Expr, values: pl.Series, function: Callable[[str], object], dtype: pl.DataType,
    cache: dict[str, object] | None = None,
) -> pl.Expr:
    """``column`` mapped through ``function`` once per distinct value (None where it raises BadRow)."""
    known = {} if cache is None else cache
    mapping: dict[str, object] = {}
    for value in values.unique().drop_nulls().to_list():
        if value not in known:
            try:
                known[value] = function(value)
            except BadRow:
                known[value] = None
        mapping[value] = known[value]
    return column.replace_strict(mapping, default=None, return_dtype=dtype)


class _Patients:
    """Patient keys as small integers (sorting and grouping on them is cheaper than on the keys)."""

    def __init__(self, keys: PatientKeys) -> None:
        self.pseudonymise = keys
        self.keys: list[str] = []
        self.codes: dict[str, int] = {}
        self.raw: dict[str, object] = {}  #: patient_id cell → code (None: bad), across blocks

    def code(self, key: str) -> int:
        code = self.codes.get(key)
        if code is None:
            code = self.codes[key] = len(self.keys)
            self.keys.append(key)
        return code

    def of_cell(self, raw: str) -> int:
        return self.code(self.pseudonymise(raw))


def _time_stamp(text: str) -> int:
    return visit_stamp(parse_time(text, "occurred_at"))


def _time_checked(text: str) -> bool:
    parse_time(text, "cancelled_at")
    return True


def _with_stamp(frame: pl.DataFrame, name: str, alias: str) -> pl.DataFrame:
    """``frame`` with ``alias``: seconds (date ordinal × 86 400 + local second of day) of ``name`` in the
    common shapes, null for any other text (which the caller maps through the pure parser)."""
    col = pl.col(name)
    parts = frame.select(
        col.str.contains(_SHAPE).alias("shape"),
        (col.str.len_bytes() == 10).alias("date_only"),
        col.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias("day"),
        (col.str.slice(0, 4) == "0000").alias("year_0"),
        *(col.str.slice(at, 2).cast(pl.Int64, strict=False).fill_null(0).alias(unit)
          for at, unit in ((11, "h"), (14, "m"), (17, "s"))),
    )
    valid = (
        pl.col("shape") & pl.col("day").is_not_null() & ~pl.col("year_0")
        & (pl.col("date_only") | ((pl.col("h") < 24) & (pl.col("m") < 60) & (pl.col("s") < 60)))
    )
    stamp = parts.select(
        pl.when(valid).then(
            (pl.col("day").cast(pl.Int64) + EPOCH_ORDINAL) * SECONDS_PER_DAY
            + pl.col("h") * 3600 + pl.col("m") * 60 + pl.col("s")
        ).alias(alias)
    )
    return frame.with_columns(stamp.to_series())


def _read_visits(
    path: Path, keys: _Patients, settings: ContinuitySettings, report_bad: Callable[[int, str], None],
    progress: Callable[[int, int], None],
) -> tuple[pl.DataFrame, pl.Series, VisitTotals]:
    """(visits that may count, every patient key with a good row, totals)."""
    blocks = _blocks(path)
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
    totals = VisitTotals()
    frames: list[pl.DataFrame] = []
    patients: list[pl.Series] = []
    line = 2
    for index, block in enumerate(_chain(first[header_end + 1:] if header_end >= 0 else b"", blocks)):
        lines = _lines(block, line)
        line += lines.height
        good, extra, rows, cancelled = _parse_block(lines, columns, keys, settings, report_bad)
        totals.rows += rows
        totals.cancelled += cancelled
        patients.append(good.get_column("patient"))
        frames.append(good.filter(~pl.col("cancelled") & (pl.col("flags") > 0) & pl.col("type_counts")))
        if extra is not None:
            patients.append(extra.get_column("patient"))
            frames.append(extra.filter(~pl.col("cancelled") & (pl.col("flags") > 0) & pl.col("type_counts")))
        progress(totals.rows, pl.concat(patients).n_unique())
    visits = pl.concat(frames).drop("cancelled", "type_counts").sort("line") if frames else _EMPTY_VISITS
    everyone = pl.concat(patients).unique() if patients else pl.Series("patient", [], dtype=pl.Int64)
    return visits, everyone, totals


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


_VISIT_SCHEMA = {
    "line": pl.Int64, "patient": pl.Int64, "visit_id": pl.String, "practitioner": pl.String,
    "care_unit": pl.String, "stamp": pl.Int64, "flags": pl.Int8, "type_counts": pl.Boolean, "cancelled": pl.Boolean,
}
_EMPTY_VISITS = pl.DataFrame(schema={k: v for k, v in _VISIT_SCHEMA.items() if k not in ("cancelled", "type_counts")})


def _parse_block(
    lines: pl.DataFrame,
    columns: dict[str, int],
    keys: _Patients,
    settings: ContinuitySettings,
    report_bad: Callable[[int, str], None],
) -> tuple[pl.DataFrame, pl.DataFrame | None, int, int]:
    """(good rows, rows the pure parser accepted after a vectorised check failed, data rows, cancelled)."""
    text = pl.col("text")
    # csv yields [] for an empty line and read_extract skips rows whose cells are all blank
    lines = lines.filter(text.str.contains(f"[^,{re.escape(PY_WHITESPACE)}]"))
    wanted = (*REQUIRED_COLUMNS, "contact_type", "cancelled_at", "cancel_reason")
    enough = len(columns) - 1  # a row needs as many fields as the header has names
    last = max(enough, *(columns[name] for name in wanted if name in columns))
    # split_exact leaves the text after field `last` unsplit, and null fields where a row is short
    fields = lines.select("line", "text", text.str.split_exact(",", last).alias("f")).unnest("f")
    # Polars' own strip_chars() strips what str.strip() does except U+001C..U+001F
    odd_space = fields.get_column("text").str.contains("[\x1c-\x1f]").any()

    def cell(name: str) -> pl.Expr:
        index = columns.get(name)
        if index is None:
            return pl.lit("", dtype=pl.String).alias(name)
        field = pl.col(f"field_{index}")
        return (field.str.strip_chars(PY_WHITESPACE) if odd_space else field.str.strip_chars()).fill_null("").alias(name)

    raw = fields.select("line", "text", pl.col(f"field_{enough}").is_not_null().alias("enough"), *map(cell, wanted))
    raw = _with_stamp(raw, "occurred_at", "stamp")
    cancels = raw.filter(pl.col("cancelled_at") != "").select("line", "cancelled_at")
    cancels = _with_stamp(cancels, "cancelled_at", "cancel_stamp")
    odd_cancels = cancels.filter(pl.col("cancel_stamp").is_null())
    odd_cancels = odd_cancels.filter(
        ~_mapped(pl.col("cancelled_at"), odd_cancels.get_column("cancelled_at"), _time_checked, pl.Boolean).fill_null(False)
    )
    raw = raw.with_columns((~pl.col("line").is_in(odd_cancels.get_column("line").implode())).alias("cancel_ok"))
    odd_times = raw.filter(pl.col("stamp").is_null() & (pl.col("occurred_at") != "")).get_column("occurred_at")
    raw = raw.with_columns(
        pl.col("stamp").fill_null(_mapped(pl.col("occurred_at"), odd_times, _time_stamp, pl.Int64)),
        _mapped(pl.col("patient_id"), raw.get_column("patient_id").filter(raw.get_column("patient_id") != ""),
                keys.of_cell, pl.Int64, keys.raw).alias("patient"),
        _mapped(pl.col("profession"), raw.get_column("profession"), lambda p: counts_for(p, settings), pl.Int8).alias("flags"),
        _mapped(pl.col("contact_type"), raw.get_column("contact_type"),
                lambda c: c == "" or normalise_code(c) in settings.contact_types, pl.Boolean).alias("type_counts"),
    )
    checked = (
        pl.col("enough")
        & ((pl.col("cancel_reason") == "") | pl.col("cancel_reason").is_in(CANCEL_REASONS))
        & pl.col("patient").is_not_null()
        & pl.all_horizontal(*(pl.col(c) != "" for c in REQUIRED_COLUMNS))
        & pl.col("stamp").is_not_null()
        & pl.col("cancel_ok")
    )
    raw = raw.with_columns(checked.alias("checked"), (pl.col("cancelled_at") != "").alias("cancelled"))
    good = raw.filter("checked").select(
        "line", "patient", "visit_id", pl.col("practitioner_id").alias("practitioner"),
        pl.col("care_unit_id").alias("care_unit"), "stamp", "flags", "type_counts", "cancelled",
    )
    cancelled = int(good.get_column("cancelled").sum())
    extra_rows: list[dict[str, object]] = []
    for line, row_text in raw.filter(~pl.col("checked")).select("line", "text").iter_rows():
        try:
            row: ExtractVisit = parse_row(row_text.split(","), columns, line, keys.pseudonymise, for_events=False)
        except BadRow as exc:
            report_bad(line, str(exc))
            continue
        cancelled += row.cancelled_at is not None
        extra_rows.append({
            "line": line, "patient": keys.code(row.patient_key), "visit_id": row.visit_id, "practitioner": row.practitioner_id,
            "care_unit": row.care_unit_id, "stamp": visit_stamp(row.occurred_at),
            "flags": counts_for(row.profession, settings),
            "type_counts": row.contact_type is None or normalise_code(row.contact_type) in settings.contact_types,
            "cancelled": row.cancelled_at is not None,
        })
    extra = pl.DataFrame(extra_rows, schema=_VISIT_SCHEMA) if extra_rows else None
    return good, extra, raw.height, cancelled


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
            (pl.col("c") * pl.col("c")).sum().alias(f"{prefix}sum_sq"),
            pl.col("c").max().alias(f"{prefix}top"),
            pl.len().alias(f"{prefix}m"),
        )
    )
    return per_patient.join(per_provider, on="patient")


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
    CLI.  ``progress`` gets (rows, patients so far) after each block and at the end.  Raises :class:`Unsupported` before anything is written or reported when the file needs the
    pure engine.
    """
    bad: list[tuple[int, str]] = []
    codes = _Patients(keys)
    visits, patients, totals = _read_visits(
        visits_path, codes, settings, lambda line, reason: bad.append((line, reason)), progress
    )
    lo, hi = window_bounds(as_of, settings.window_months)
    lo_stamp, hi_stamp = (lo + 1) * SECONDS_PER_DAY, (hi + 1) * SECONDS_PER_DAY
    listed = [codes.code(p) for p in listings]
    listing_frame = pl.DataFrame(
        {"patient": listed, "unit": [u for u, _ in listings.values()]}, schema={"patient": pl.Int64, "unit": pl.String}
    )
    flk_frame = pl.DataFrame(
        [(code, f) for code, (_, flks) in zip(listed, listings.values()) for f in flks],
        schema={"patient": pl.Int64, "practitioner": pl.String}, orient="row",
    ).with_columns(pl.lit(1, dtype=pl.Int64).alias("with_flk"))
    # the pure state: first row per visit id among those that can count and are after the window start
    stored = visits.filter(pl.col("stamp") >= lo_stamp).unique(["patient", "visit_id"], keep="first", maintain_order=True)
    counted = stored.filter(pl.col("stamp") < hi_stamp)
    if settings.scope is Scope.LISTING_UNIT:
        counted = counted.join(listing_frame, on="patient", how="left").filter(
            pl.col("unit").is_null() | (pl.col("care_unit") == pl.col("unit"))
        )
    counted = (
        counted.join(flk_frame, on=["patient", "practitioner"], how="left")
        .select("patient", "stamp", "line", "flags", pl.col("with_flk").fill_null(0),
                pl.col("practitioner").cast(pl.Categorical).to_physical().alias("provider"))
        .sort("patient", "stamp", "line")
    )
    stats = _stats(counted, COUNTS_FOR_DOCTOR, "d_").join(_stats(counted, COUNTS_FOR_TOTAL, "t_"), on="patient", how="full",
                                                          coalesce=True)
    for line, reason in bad:
        report_bad(line, reason)
    everyone = set(patients.to_list())
    everyone.update(listed)
    progress(totals.rows, len(everyone))
    by_patient = {row[0]: row for row in stats.iter_rows()}
    at = {name: i for i, name in enumerate(stats.columns)}
    min_visits = settings.min_visits
    no_listing = (None, ())
    lines = JsonLines(out)
    for code in sorted(everyone, key=codes.keys.__getitem__):
        patient = codes.keys[code]
        row = by_patient.get(code)
        has_flk = bool(listings.get(patient, no_listing)[1])
        sets = []
        for prefix in ("d_", "t_"):
            if row is None or row[at[prefix + "n"]] is None:
                sets.append(IndexSet(0, None, None, None, None, None, None, min_visits <= 0))
            else:
                sets.append(_index_set(*(row[at[prefix + k]] for k in ("n", "same", "flk", "sum_sq", "top", "m")),
                                       has_flk, min_visits))
        indices = PatientIndices(as_of, sets[0], sets[1])
        lines.write({"patient_id": patient, **indices.to_json_dict()})
    lines.close()
    return totals, len(everyone)
