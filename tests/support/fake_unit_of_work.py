"""What the service layers' in-memory units of work share: commit when the block ends normally,
otherwise put the fake store back as it was (the real unit of work rolls the transaction back)."""
from __future__ import annotations

from typing import Any


class InMemoryUnitOfWork:
    """Subclasses say how to take and put back the fake store's state (``_snapshot`` / ``_restore``)."""

    def __init__(self) -> None:
        self.commits = 0
        self.rollbacks = 0
        self._before: Any = None

    def _snapshot(self) -> Any:
        raise TypeError(f"{type(self).__name__} must say how to snapshot its store")

    def _restore(self, before: Any) -> None:
        raise TypeError(f"{type(self).__name__} must say how to restore its store")

    async def __aenter__(self):
        self._before = self._snapshot()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commits += 1
        else:
            self._restore(self._before)
            self.rollbacks += 1
        self._before = None
