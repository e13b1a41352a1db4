"""System tools some tests need (kcat, prometheus, promtool, chromium, ...), which `./run setup` installs.

Without one, a test is skipped on a developer's machine and FAILS under ``CI=true``: a broken CI
install must never turn into green skips.
"""
from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing_tool(reason: str) -> None:
    """Skip the calling test, or fail it under CI=true, saying what is missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing tool fails the test)", pytrace=False)
    pytest.skip(reason)


def require_tool(command: str, installed_by: str = "./run setup") -> str:
    """The tool's path; without it the calling test skips, or fails under CI=true."""
    path = shutil.which(command)
    if path is None:
        missing_tool(f"{command} is not installed ({installed_by} installs it)")
    return path  # type: ignore[return-value]
