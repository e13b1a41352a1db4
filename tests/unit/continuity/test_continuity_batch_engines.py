"""`flk continuity indices --engine polars` gives exactly what `--engine pure` gives.

Hypothesis writes whole visit extracts (and listings) with what the pure path has rules for, and both
engines must agree byte for byte on stdout, on the bad rows reported (reason and line), on the summary
line and on the exit code; and the polars engine must have done the work itself (no hand-over to pure).
"""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.continuity.adapters.batch_polars import BLOCK_BYTES, PARTITION_BYTES, PY_WHITESPACE
from services.continuity.domain.window import window_start
from services.continuity.entrypoints.cli import continuity

pytestmark = pytest.mark.unit

HANDED_OVER = "engine polars:"
PERSON_NUMBERS = ["199001012385", "19900101-2385", "900101-2385", "199001012381"]  # the last: bad check digit
PATIENTS = ["p1", "p2", " p3 ", "p4\u00a0", "pk1_" + "a" * 52, *PERSON_NUMBERS]
PRACTITIONERS = ["A", "B", "C", " D", "A\x1c"]
PROFESSIONS = ["läkare", "läkare", "Läkare", " LÄKARE ", "la\u0308kare", "ssk", "sjuksköterska"]
UNITS = ["U1", "U1", "U2", " U1"]
CONTACT_TYPES = ["", "besok", "telefon", "brev", "Besök", " digital ", "HEMBESOK"]
TIMES = ["", "", "", "T10:00:00", "T10:00", " 10:00", "T10:00:00+01:00", "T23:30:00Z", "T10:00:00.500",
         "T09:59:59", "T02:30:00", "T10:00:00", "T10:00:00"]
ODD_TIMES = ["T24:00:00", "T10:00:60", "T1000", "T10:00:00+25:00"]
ODD_DATES = ["2025-02-30", "2025-W10-1", "20250301", "0000-01-01", "tomorrow", "2025-3-01", ""]
REASONS = ["", "cancelled", "no_show", "entered_in_error", "bogus"]
OPTIONAL = ["contact_type", "cancelled_at", "cancel_reason", "source_system"]
REQUIRED = ["patient_id", "visit_id", "practitioner_id", "profession", "care_unit_id", "occurred_at"]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(continuity, ["indices", *map(str, args)])


@st.composite
def day_near(draw, as_of: date, months: int) -> str:
    """A date at the window's edges and around *as of*, or an odd one."""
    start = window_start(as_of, months) or date(2000, 1, 1)
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from(ODD_DATES))
    anchor = draw(st.sampled_from([start, as_of, start + (as_of - start) / 2]))
    return (anchor + timedelta(days=draw(st.integers(-2, 2)))).isoformat()


@st.composite
def extract(draw) -> dict:
    as_of = draw(st.dates(date(2024, 1, 1), date(2026, 12, 31)))
    months = draw(st.sampled_from([0, 1, 18]))
    columns = REQUIRED + draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    columns = draw(st.permutations(columns))
    header = ",".join(draw(st.sampled_from([c, c.upper(), f" {c} "])) for c in columns)
    rows = []
    # regular: every row has the header's number of fields (the blocks Polars' CSV reader reads)
    regular = draw(st.booleans())
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.integers(0, 30))
        if regular and kind in (0, 1, 3, 4):
            rows.append(",".join(draw(st.sampled_from(["", " ", "\t"])) for _ in columns))  # a blank row
            continue
        if kind == 0:
            rows.append("")
            continue
        if kind == 1:
            rows.append(", ,\t" + "," * draw(st.integers(0, 8)))
            continue
        cancelled = ""
        if draw(st.integers(0, 5)) == 0:
            cancelled = draw(st.sampled_from(["2025-01-01T10:00:00", "2025-01-01", "bad", " 2025-01-01 "]))
        cells = {
            "patient_id": draw(st.sampled_from(PATIENTS)),
            "visit_id": draw(st.sampled_from(["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", " v1"])),
            "practitioner_id": draw(st.sampled_from(PRACTITIONERS)),
            "profession": draw(st.sampled_from(PROFESSIONS)),
            "care_unit_id": draw(st.sampled_from(UNITS)),
            "occurred_at": draw(day_near(as_of, months)) + draw(st.sampled_from(TIMES)),
            "contact_type": draw(st.sampled_from(CONTACT_TYPES)),
            "cancelled_at": cancelled,
            "cancel_reason": draw(st.sampled_from(REASONS)) if cancelled or kind == 2 else "",
            "source_system": "cosmic",
        }
        if kind == 5:
            cells[draw(st.sampled_from(REQUIRED))] = draw(st.sampled_from(["", " "]))
        elif kind == 6:
            cells["occurred_at"] = cells["occurred_at"][:10] + draw(st.sampled_from(ODD_TIMES))
        row = [cells[c] for c in columns]
        if kind == 3:
            row = row[: draw(st.integers(1, len(row) - 1))]  # too few fields
        elif kind == 4:
            row = [*row, "extra"]
        rows.append(",".join(row))
    listed = draw(st.lists(st.sampled_from(["p1", "p2", " p3 ", "p5", *PERSON_NUMBERS[:1]]), unique=True))
    listings = [f"{p.strip()},{draw(st.sampled_from(['U1', 'U2']))},{draw(st.sampled_from(['A', 'B', '']))}" for p in listed]
    return {
        "as_of": as_of, "months": months, "header": header, "rows": rows, "listings": listings,
        "scope": draw(st.sampled_from(["listing-unit", "all"])), "min_visits": draw(st.integers(0, 3)),
        "newline": draw(st.sampled_from(["\n", "\r\n"])), "bom": draw(st.booleans()),
        "small_blocks": draw(st.booleans()),
    }


def write_files(tmp: Path, case: dict) -> tuple[Path, Path]:
    visits, listings = tmp / "visits.csv", tmp / "listings.csv"
    text = case["newline"].join([case["header"], *case["rows"]]) + case["newline"]
    visits.write_text(("\ufeff" if case["bom"] else "") + text, encoding="utf-8", newline="")
    listings.write_text("\n".join(["patient_id,care_unit_id,fast_lakarkontakt_id", *case["listings"]]) + "\n",
                        encoding="utf-8")
    return visits, listings


def both(visits: Path, listings: Path, *options: str) -> tuple[Result, Result]:
    common = ("--visits", visits, "--listings", listings, *options)
    return run(*common, "--engine", "pure"), run(*common, "--engine", "polars")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=extract())
def test_the_polars_engine_gives_the_pure_engines_output_for_every_patient_and_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: dict
) -> None:
    from services.continuity.adapters import batch_polars

    # small blocks and partitions: many blocks, some split line by line and some read by Polars, and the
    # kept rows spilled to disk in patient partitions, as for a national extract
    monkeypatch.setattr(batch_polars, "BLOCK_BYTES", 150 if case["small_blocks"] else BLOCK_BYTES)
    monkeypatch.setattr(batch_polars, "PARTITION_BYTES", 300 if case["small_blocks"] else PARTITION_BYTES)
    visits, listings = write_files(tmp_path, case)
    pure, fast = both(visits, listings, "--as-of", case["as_of"].isoformat(), "--window-months", str(case["months"]),
                      "--scope", case["scope"], "--min-visits", str(case["min_visits"]))
    assert HANDED_OVER not in fast.stderr, fast.stderr
    assert pure.exit_code in (0, 1), pure.output
    assert fast.exception is None or isinstance(fast.exception, SystemExit), repr(fast.exception)
    assert fast.stdout_bytes == pure.stdout_bytes
    assert fast.stderr == pure.stderr  # the bad rows (reason, line) and the summary line
    assert fast.exit_code == pure.exit_code


def test_same_day_visits_keep_the_file_order_and_timed_ones_their_time(tmp_path: Path) -> None:
    rows = ["p,v1,A,läkare,U,2025-03-01T12:00:00", "p,v2,B,läkare,U,2025-03-01", "p,v3,B,läkare,U,2025-03-01",
            "p,v4,A,läkare,U,2025-03-01T08:00:00", "p,v5,A,läkare,U,2025-03-02"]
    visits = tmp_path / "v.csv"
    visits.write_text("patient_id,visit_id,practitioner_id,profession,care_unit_id,occurred_at\n" + "\n".join(rows) + "\n")
    listings = tmp_path / "l.csv"
    listings.write_text("patient_id,care_unit_id,fast_lakarkontakt_id\n")
    pure, fast = both(visits, listings, "--as-of", "2025-06-30")
    assert HANDED_OVER not in fast.stderr
    assert fast.stdout_bytes == pure.stdout_bytes
    assert b'"secon":0.75' in fast.stdout_bytes  # B B (00:00, file order) A (08:00) A (12:00) A (next day)


def test_a_file_with_quotes_is_handed_to_the_pure_engine_with_a_note(tmp_path: Path) -> None:
    visits = tmp_path / "v.csv"
    visits.write_text('patient_id,visit_id,practitioner_id,profession,care_unit_id,occurred_at\n'
                      'p,v1,"A,1",läkare,U,2025-03-01\n')
    listings = tmp_path / "l.csv"
    listings.write_text("patient_id,care_unit_id,fast_lakarkontakt_id\np,U,\"A,1\"\n")
    pure, fast = both(visits, listings, "--as-of", "2025-06-30")
    assert "engine polars: the file has double quotes; computing with the pure engine" in fast.stderr
    assert fast.stdout_bytes == pure.stdout_bytes and b'"kpc":1.0' in fast.stdout_bytes


def test_the_engines_strip_exactly_what_python_strips() -> None:
    import sys

    assert PY_WHITESPACE == "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


def test_a_file_read_in_many_blocks_gives_the_same_lines_numbers_and_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.continuity.adapters import batch_polars

    rows = [f"p{i % 7},v{i % 50},{'ABC'[i % 3]},läkare,U1,2025-0{1 + i % 6}-1{i % 10}" for i in range(120)]
    rows[33] = "p1,v99,A,läkare,U1,2025-02-30"  # a bad row in a later block
    rows[80] = ""
    visits = tmp_path / "v.csv"
    visits.write_text("patient_id,visit_id,practitioner_id,profession,care_unit_id,occurred_at\n" + "\n".join(rows) + "\n")
    listings = tmp_path / "l.csv"
    listings.write_text("patient_id,care_unit_id,fast_lakarkontakt_id\np1,U1,A\n")
    monkeypatch.setattr(batch_polars, "BLOCK_BYTES", 100)  # about two rows a block
    pure, fast = both(visits, listings, "--as-of", "2025-06-30")
    assert HANDED_OVER not in fast.stderr
    assert f"{visits}:35: skipped: bad occurred_at '2025-02-30'" in fast.stderr
    assert (fast.stdout_bytes, fast.stderr, fast.exit_code) == (pure.stdout_bytes, pure.stderr, pure.exit_code)


@st.composite
def block(draw) -> tuple[bytes, int]:
    """A block of lines as the engine reads them: often every line with the header's number of fields."""
    width = draw(st.integers(6, 10))
    cell = st.text(alphabet=st.sampled_from(list("ab1-: \t\u00a0\x1cåÄ\u3000")), max_size=4)
    regular = draw(st.booleans())
    lines = []
    for _ in range(draw(st.integers(1, 30))):
        if regular:
            n = width
        else:
            n = draw(st.integers(0, width + 2))
        lines.append(",".join(draw(cell) for _ in range(n)))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from([newline, ""]))
    return text.encode(), width


@settings(max_examples=300, deadline=None)
@given(case=block())
def test_a_block_gives_each_line_and_its_fields_as_splitting_it_on_commas_does(case: tuple[bytes, int]) -> None:
    from services.continuity.adapters.batch_polars import _fields

    data, width = case
    frame = _fields(data, 7, width)
    lines = data.decode().split("\n")
    if lines[-1] == "":
        lines.pop()
    expected = []
    for number, line in enumerate(lines, start=7):
        line = line.removesuffix("\r")
        parts = line.split(",")[:width]  # csv's first `width` cells (a line without quotes)
        expected.append((number, *parts, *[None] * (width - len(parts))))
    assert frame.select("line", *(f"f{i}" for i in range(width))).rows() == expected


def test_a_regular_block_is_read_by_polars_and_an_irregular_one_split_line_by_line() -> None:
    from services.continuity.adapters.batch_polars import _fields

    assert "text" not in _fields(b"a,b,c,d,e,f\r\ng,h,i,j,k,l\r\n", 2, 6).columns  # Polars' CSV reader
    assert "text" in _fields(b"a,b,c,d,e,f\ng,h,i,j,k\n", 2, 6).columns  # a short row
    assert "text" in _fields(b"a,b,c,d,e,f\n\ng,h,i,j,k,l,m,n,o,p,q\n", 2, 6).columns  # an empty and a long one
    long_first = _fields(b"a,b,c,d,e,f,g\nh,i,j,k,l\n", 2, 6)  # as many commas as two regular lines
    assert long_first.rows() == [(2, "a,b,c,d,e,f,g", *"abcdef"), (3, "h,i,j,k,l", *"hijkl", None)]
