"""`flk run` end to end: a simulated region through the real services, then the goal summary."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.support.browser import chromium_binaries, goal_report_as_seen

pytestmark = pytest.mark.e2e


def _row(text: str, goal: str, what: str = "") -> str:
    for line in text.splitlines():
        if line.strip().startswith(goal) and what in line:
            return line
    raise AssertionError(f"no {goal} row in the summary:\n{text}")


async def test_the_main_job_prints_the_goal_summary_with_g1_to_g4_from_the_services(region_run):
    text = region_run.text
    print(text)  # shown with -s / on failure: the run's own output
    assert region_run.job is not None, f"the main job did not reach its summary:\n{text}"
    g1 = _row(text, "G1")
    assert re.search(r"\d+\.\d %\s+[\d ]+\s+\d+\.\d %\s+[\d ]+\s+[+-]\d+\.\d pp\s+≥ 55 %", g1), g1
    interval = r"0\.\d{3} \(0\.\d{3}–0\.\d{3}\)"
    change = r"[+-]\d+\.\d % \([+-]\d+\.\d % to [+-]\d+\.\d %\)"
    g2 = _row(text, "G2", "doctor contacts")
    assert re.search(rf"{interval}\s+[\d ]+\s+{interval}\s+[\d ]+\s+{change}\s+\+20 %", g2), g2
    assert re.search(interval, _row(text, "G2", "total contacts"))
    g3 = _row(text, "G3")
    assert "≥ 80 %" in g3 and re.search(r"\d+\.\d %", g3), g3
    assert "significant increase" in _row(text, "G4")
    assert "Where to look:" in text and "/docs" in text and "/metrics" in text and "/worklist" in text


async def test_the_continuity_goal_figures_compare_complete_windows_with_cohorts_and_the_same_patients(region_run):
    """The simulated region has 18 months of visit history, recorded as data coverage: both windows are
    complete, so G2 is a goal figure with a verdict, never 'incomplete window' or 'no data'."""
    text = region_run.text
    assert re.search(r"Visit data complete from \d{4}-\d{2}-\d{2} \(simulator\)", text), text
    assert "continuity windows: baseline complete (100 % covered), now complete (100 % covered)" in text, text
    g2 = _row(text, "G2", "doctor contacts")
    assert re.search(r"(met|not met|inconclusive|too few patients)$", g2) and "incomplete" not in g2, g2
    assert re.search(r"same patients at both dates \(n = [\d ]+\)", text), text


async def test_the_goal_figures_are_the_listing_services_own_views(region_run):
    """G1 and G3 'now' in the summary are what listing.goal_kpi_region answers (nothing recomputed by the job)."""
    import asyncpg

    conn = await asyncpg.connect(region_run.readonly_dsn)
    try:
        row = await conn.fetchrow("SELECT g1_share_of_population, g3_share FROM listing.goal_kpi_region "
                                  "WHERE region_code = '19'")
    finally:
        await conn.close()
    assert f"{float(row['g1_share_of_population']) * 100:.1f} %" in _row(region_run.text, "G1")
    assert f"{float(row['g3_share']) * 100:.1f} %" in _row(region_run.text, "G3")


async def test_alerts_reach_the_demo_mail_catcher_and_teams_sink(region_run):
    job = region_run.job
    assert job.mail.received > 0 and job.teams.received > 0
    assert f"mail catcher received {job.mail.received} email(s)" in region_run.text
    for subject in job.mail.subjects:  # counts only: never a patient key in an email
        assert "pk1_" not in subject


async def test_malformed_input_is_counted_as_dead_letters_in_the_summary(region_run):
    match = re.search(r"Dead-lettered events: (\d+) \((.*)\)", region_run.text)
    assert match, region_run.text
    assert int(match.group(1)) >= 3
    for topic in ("ehr.visits.v1.dlq", "listing.commands.v1.dlq", "population.persons.v1.dlq"):
        assert topic in match.group(2)


async def test_ctrl_c_stops_every_service_the_main_job_started(infra, fresh_database, tmp_path):
    import asyncio
    import os
    import signal
    import socket
    import uuid
    from datetime import date

    from flk.events.admin import delete_topics_with_prefix
    from tools.mainjob.cli import run_main_job
    from tools.mainjob.job import JobConfig
    from tests.e2e.conftest import free_port

    ports = [free_port() for _ in range(6)]
    prefix = f"e2eint{uuid.uuid4().hex[:6]}."
    config = JobConfig(bootstrap=infra.kafka_bootstrap, database_url=fresh_database, state_dir=tmp_path,
                       preset="small", end_date=date.today(), limit_people=300, topic_prefix=prefix,
                       listing_port=ports[0], continuity_port=ports[1], notifier_port=ports[2],
                       smtp_port=ports[3], teams_port=ports[4], ingest_port=ports[5])
    output: list[str] = []
    job = asyncio.create_task(run_main_job(config, None, exit_after_summary=False, echo=output.append))

    def listening(port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        for _ in range(600):
            if any("replaying" in line for line in output) or job.done():
                break
            await asyncio.sleep(0.1)
        assert not job.done(), output
        assert all(listening(p) for p in ports[:3] + ports[5:])  # listing, continuity, notifier, FHIR ingest serve
        os.kill(os.getpid(), signal.SIGINT)
        assert await asyncio.wait_for(job, 60) == 130
        assert "interrupted: stopping what was started" in output
        assert not any(listening(p) for p in ports), "a service or demo sink still listens after Ctrl-C"
    finally:
        if not job.done():
            job.cancel()
        await delete_topics_with_prefix(infra.kafka_bootstrap, prefix)


async def test_the_main_job_writes_the_goal_report_whose_charts_render_in_a_browser_and_as_pdf(region_run, tmp_path):
    chromium_binaries()
    match = re.search(r"Goal report: (\S+\.html) \(PDF: (\S+\.pdf)\)", region_run.text)
    assert match, region_run.text
    html, pdf = Path(match[1]), Path(match[2])
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000
    seen = await asyncio.to_thread(goal_report_as_seen, html, tmp_path / "profile")
    assert seen["title"].startswith("Goal report — Region Västmanland")
    assert seen["headings"] == ["The four goals", "Over time", "Care units", "Care gaps", "How to read this"]
    captions = [c for _, _, c in seen["charts"]]
    assert len(seen["charts"]) == 5, captions     # G1/G3, G2, G4, the units, the care gaps
    assert all(width > 300 and paths > 10 for width, paths, _ in seen["charts"]), seen["charts"]
    assert captions[1].startswith("G2: mean continuity") and captions[2].startswith("G4:")
    assert len(seen["verdicts"]) == 5 and all(v for v in seen["verdicts"])
    assert "pk1_" not in html.read_text(encoding="utf-8")


def _worklist_as_seen(url: str, token: str, profile: Path, screenshot: Path) -> dict:
    """A clinician's first look at the demo's worklist (blocking): log in, read the page, and take the
    screenshot of it (README's docs/images/worklist.png comes from here, see docs/worklist.md)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.support.browser import headless_chromium

    with headless_chromium(profile, window=(1280, 1000)) as driver:
        driver.get(url)
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "login").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table#gaps, #no-gaps"))
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(max(height, 600), 2400))
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        return {
            "unit": driver.find_element(By.ID, "unit").text,
            "summary": driver.find_element(By.ID, "summary").text,
            "patients": [c.text for c in driver.find_elements(By.CSS_SELECTOR, "tr.gap td.patient")],
            "names": [c.text for c in driver.find_elements(By.CSS_SELECTOR, "tr.gap td.patient strong.name")],
            "numbers": [c.text for c in driver.find_elements(By.CSS_SELECTOR, "tr.gap td.patient span.pnr")],
            "doctors": [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#doctors td.doctor-name")],
            "next": bool(driver.find_elements(By.ID, "next-page")),
        }


async def test_a_clinician_sees_the_demo_worklist_with_names_personnummer_a_summary_and_pages(region_run, tmp_path):
    """The issue-16 journey after `./run main`: the unit's worklist names its patients (synthetic
    identities: Skatteverket's test personnummer), the unit and its doctors, with a count summary
    and pages. ``FLK_WORKLIST_SCREENSHOT=docs/images/worklist.png`` writes the README's screenshot."""
    import os

    import asyncpg

    from flk.security.tokens import Role, issue_token
    from flk.settings import PlatformSettings
    from tools.simulator.identities import published_test_personnummer

    chromium_binaries()
    job = region_run.job
    conn = await asyncpg.connect(region_run.readonly_dsn)
    try:
        unit, open_gaps = await conn.fetchrow("SELECT care_unit_id, open_gaps FROM notifier.open_care_gaps_by_unit "
                                              "ORDER BY open_gaps DESC, care_unit_id LIMIT 1")
    finally:
        await conn.close()
    assert open_gaps > 10, "the demo has a worklist worth paging"
    token = issue_token(PlatformSettings(), "SE2321000016-DEMO", Role.CLINICIAN, [unit])
    screenshot = Path(os.environ.get("FLK_WORKLIST_SCREENSHOT") or tmp_path / "worklist.png")

    seen = await asyncio.to_thread(_worklist_as_seen, job.url(job.c.notifier_port, f"/units/{unit}/worklist?per_sida=10"),
                                   token, tmp_path / "profile", screenshot)

    unit_name = next(u.name for u in job.units if u.care_unit_id == unit)
    assert unit_name in seen["unit"] and unit in seen["unit"]
    assert f"{open_gaps} öppna vårdluckor" in seen["summary"] and "Per orsak" in seen["summary"]
    assert len(seen["patients"]) == 10 and seen["next"]
    assert len(seen["names"]) >= 8, seen["patients"]  # all but protected identities (~0.5 %) have a name
    series = set(published_test_personnummer())
    assert seen["numbers"] and all(n.replace("-", "") in series for n in seen["numbers"]), seen["numbers"]
    assert not any("Identitet saknas" in p for p in seen["patients"])
    assert seen["doctors"] and not any(d.startswith("SE") for d in seen["doctors"]), seen["doctors"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
