"""Continuity stream tests: the `slow` marker (they still run in CI; `-m "not slow"` skips them locally)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a longer continuity stream test (runs in CI)")
