"""System tools a test runs (Debian packages that ``./run setup`` installs).

Without one a test is skipped on a developer's machine and FAILS under ``CI=true``: a missing tool
must never turn a test into a green skip in CI (the same rule as tests/support/browser.py).
"""
from __future__ import annotations

import os
import shutil

import pytest


def require_tool(binary: str, package: str) -> str:
    """The tool's path; skips the calling test without it, or fails it under CI=true."""
    path = shutil.which(binary)
    if path:
        return path
    message = f"'{binary}' is not installed (Debian: {package}; ./run setup installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
