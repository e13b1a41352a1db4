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


def require_tool(command: str, package: str | None = None) -> str:
    """The tool's path; without it the calling test skips, or fails under CI=true.
    ``package``: the Debian package that has it, when its name is not the command's."""
    path = shutil.which(command)
    if path is None:
        missing_tool(f"'{command}' is not installed (Debian: {package or command}; ./run setup installs it)")
    return path  # type: ignore[return-value]
