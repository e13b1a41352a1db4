"""Shared: one generated `small` preset per session (generation is deterministic and pure)."""
from __future__ import annotations

from datetime import date

import pytest

from tools.simulator.generate import Emitted, Simulation

END = date(2026, 6, 30)
KEY = b"simulator-test-pseudonym-key"


def small(seed: int = 42, **kwargs) -> Simulation:
    return Simulation("small", seed=seed, end_date=END, pseudonym_key=KEY, **kwargs)


@pytest.fixture(scope="session")
def small_run() -> tuple[Simulation, list[Emitted]]:
    sim = small()
    items = list(sim.stream())
    return sim, items
