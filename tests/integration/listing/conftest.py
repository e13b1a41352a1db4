"""Fixtures of the listing service's integration tests (defined in listing_harness)."""
from listing_harness import listing  # noqa: F401
