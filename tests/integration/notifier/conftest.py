"""Fixtures of the notifier's integration tests (defined in notifier_harness)."""
from notifier_harness import notifier, smtp_down, smtp_sink, teams_sink  # noqa: F401
