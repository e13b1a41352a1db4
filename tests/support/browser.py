"""A real headless browser for the journeys a user makes in one: Debian's chromium and
chromedriver (``./run setup`` installs both), driven by selenium.

Without them a test is skipped on a developer's machine and fails under ``CI=true``: a missing
tool must never turn a browser test into a green skip in CI.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


from tests.support.required_tools import missing_tool
from tools.report import find_chromium

MISSING = "Debian's chromium and chromium-driver are not installed (./run setup installs them)"


def chromium_binaries() -> tuple[str, str]:
    """(chromium, chromedriver); skips the calling test without them, or fails it under CI=true."""
    chromium, chromedriver = find_chromium(), shutil.which("chromedriver")
    if chromium and chromedriver:
        return chromium, chromedriver
    missing_tool(MISSING)


@contextmanager
def headless_chromium(profile: Path, *, window: tuple[int, int] = (1280, 2000)) -> Iterator[Any]:
    """A selenium driver of a fresh headless chromium with its own profile directory; quit on exit.

    Blocking: a test whose services run on its event loop calls it in a thread
    (``asyncio.to_thread``). Call :func:`chromium_binaries` first in the test itself, so that a
    missing browser skips or fails the test where it is clear why."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = chromium_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def goal_report_as_seen(html: Path, profile: Path) -> dict:
    """What a reader's browser shows of a goal report (``flk report``): its title, section headings,
    figures (SVG width, drawn paths, caption), verdicts and text. Blocking (see :func:`headless_chromium`)."""
    from selenium.webdriver.common.by import By

    with headless_chromium(profile) as driver:
        driver.get(html.as_uri())
        figures = driver.find_elements(By.CSS_SELECTOR, "figure")
        return {
            "title": driver.title,
            "headings": [h.text for h in driver.find_elements(By.TAG_NAME, "h2")],
            "charts": [(f.find_element(By.TAG_NAME, "svg").size["width"],
                        len(f.find_elements(By.CSS_SELECTOR, "svg path")),
                        f.find_element(By.TAG_NAME, "figcaption").text) for f in figures],
            "verdicts": [c.text for c in driver.find_elements(By.CSS_SELECTOR, "table.goals td[class^=verdict]")],
            "text": driver.find_element(By.TAG_NAME, "body").text,
        }
