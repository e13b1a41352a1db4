"""Shared PostgreSQL helpers: what counts as "the database is unavailable now"."""
from __future__ import annotations


def is_transient_db_error(exc: BaseException) -> bool:
    """Connection loss, failover, lock conflicts: retry the same work later."""
    import asyncpg

    transient = (
        OSError, ConnectionError, TimeoutError,
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.TooManyConnectionsError,
        asyncpg.exceptions.SerializationError,
        asyncpg.exceptions.DeadlockDetectedError,
        asyncpg.exceptions.InterfaceError,
    )
    return isinstance(exc, transient)
