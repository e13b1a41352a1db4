"""One PostgreSQL transaction per handled message: state rows + outbox rows + the inbox row."""
from __future__ import annotations

from typing import Any

from services.listing.adapters.repository import ListingRepository


class UnitOfWork:
    """``async with UnitOfWork(pool) as uow:`` — commits when the block ends normally, rolls back otherwise."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.conn: Any = None
        self._tx: Any = None
        self.repo: ListingRepository

    async def __aenter__(self) -> UnitOfWork:
        self.conn = await self.pool.acquire()
        try:
            self._tx = self.conn.transaction()
            await self._tx.start()
        except BaseException:
            await self.pool.release(self.conn)
            raise
        self.repo = ListingRepository(self.conn)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                await self._tx.commit()
            else:
                try:
                    await self._tx.rollback()
                except Exception:  # noqa: BLE001 - the connection is gone; the original error matters
                    pass
        finally:
            await self.pool.release(self.conn)
            self.conn = None


class ChunkCommandScope:
    """One command's share of a chunk's transaction (service_layer/chunks.py): the handler sees the
    chunk's repository; nothing is committed here (the chunk commits once), and a failing command
    is taken back by the chunk (``ChunkRepository.discard_command``)."""

    def __init__(self, repo: ListingRepository) -> None:
        self.repo = repo
        self.conn = repo.conn

    async def __aenter__(self) -> ChunkCommandScope:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        return None
