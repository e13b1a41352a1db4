"""`flk report`: the region's goal report as a self-contained HTML file and a PDF of it."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path


class ChromiumMissing(RuntimeError):
    """No headless Chromium to print the PDF with."""


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    pdf: Path | None


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def print_pdf(html: Path, pdf: Path, timeout_s: float = 120.0) -> None:
    """Print the HTML page to PDF with headless Chromium (the page is self-contained: no network)."""
    chromium = find_chromium()
    if chromium is None:
        raise ChromiumMissing("Chromium is needed for the PDF (apt install chromium), or pass --no-pdf")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0 or not pdf.exists():
        raise RuntimeError(f"Chromium could not print the PDF (exit {result.returncode}): {result.stderr[-500:]}")


async def write_goal_report(database_url: str, region_code: str, out_dir: Path, *, baseline: date | None = None,
                            as_of: date | None = None, pdf: bool = True, region_name: str | None = None
                            ) -> ReportPaths:
    """Read the region's figures, write ``goal-report-<region>-<date>.html`` (and ``.pdf``) into ``out_dir``."""
    import asyncpg

    from .data import read_report_data
    from .render import render_report

    conn = await asyncpg.connect(database_url)
    try:
        data = await read_report_data(conn, region_code, baseline=baseline, as_of=as_of, region_name=region_name)
    finally:
        await conn.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"goal-report-{region_code}-{data.as_of.isoformat()}.html"
    html.write_text(await asyncio.to_thread(render_report, data), encoding="utf-8")
    pdf_path = None
    if pdf:
        pdf_path = html.with_suffix(".pdf")
        await asyncio.to_thread(print_pdf, html, pdf_path)
    return ReportPaths(html, pdf_path)
