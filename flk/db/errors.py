"""What counts as "the database cannot do this now; the same work will succeed later".

One definition for every service: the APIs answer 503 with Retry-After, the consumers leave the
partition's work to be retried (never dead-lettered), the background loops try again.
Connection loss, a restart or failover, too many connections, and a transaction that lost a
serialization conflict or a deadlock all qualify; a constraint violation or a bad query does not.
"""
from __future__ import annotations

from functools import cache


@cache
def transient_database_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        OSError, ConnectionError, TimeoutError,
        asyncpg.PostgresConnectionError,  # incl. ConnectionFailureError, CannotConnectNowError
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.TooManyConnectionsError,
        asyncpg.exceptions.SerializationError,
        asyncpg.exceptions.DeadlockDetectedError,
    )


def is_transient_database_error(exc: BaseException) -> bool:
    return isinstance(exc, transient_database_errors())
