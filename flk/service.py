"""How every service process starts: logging, its own migrations, then its ASGI app on uvicorn.

`flk listing run`, `flk notifier run` and `flk continuity run` differ only in their app and
their migration component; this is the rest, written once.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flk.settings import PlatformSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# Client libraries whose INFO lines carry a request's whole URL: httpx logs "HTTP Request: POST <url>"
# for every request, and a Teams Workflows webhook URL is a credential (its signature is in the query;
# services/notifier/adapters/secrets.py). Their warnings and errors still pass.
QUIET_URL_LOGGERS = ("httpx", "httpcore")


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for name in QUIET_URL_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def apply_own_migrations(platform: PlatformSettings, component: Mapping[str, str],
                         echo: Callable[[str], Any] = print) -> None:
    """The platform's migrations and the service's own (``component``: its package's MIGRATIONS)."""
    from flk.db.migrate import PLATFORM, migrate_sync

    for m in migrate_sync(platform.database_url.get_secret_value(), PLATFORM | dict(component)):
        echo(f"applied {m.label}")


def serve(app: Any, host: str, port: int, *, access_log: bool = True, log_level: str = "info") -> None:
    """Serve the app until SIGTERM/SIGINT. uvloop and httptools (uvicorn[standard]): half the CPU per
    request of asyncio + h11 (measured on a bare ASGI app at 200 req/s: 0.31 vs 0.62 ms; docs/benchmarks.md)."""
    import uvicorn

    uvicorn.run(frozen_after_startup(app), host=host, port=port, log_level=log_level, loop="uvloop",
                http="httptools", access_log=access_log)


def frozen_after_startup(app: Any) -> Any:
    """The app, whose objects alive when its lifespan has started (the imported modules, the app, its
    pools and consumers) leave the cyclic collector's scans (``flk.collector.freeze_what_lives``)."""
    from flk.collector import freeze_what_lives

    async def wrapped(scope, receive, send):
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)

        async def send_frozen(message):
            if message["type"] == "lifespan.startup.complete":
                freeze_what_lives()
            await send(message)

        return await app(scope, receive, send_frozen)

    return wrapped
