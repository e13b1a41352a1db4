"""Stand-ins for the outside world in the demo: a mail catcher (aiosmtpd) and a Teams sink.

They only count what arrives and keep the subjects/titles (alerts carry counts, never a
patient identifier), so the summary can say how many alerts actually left the notifier. The
operations alerts (Alertmanager's, docs/operations.md) arrive at the same two sinks but are kept
apart: mail to the operations address, and webhook posts to ``/operations``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header


@dataclass
class MailCatcher:
    """A real SMTP server on loopback (aiosmtpd in its own thread)."""

    host: str = "127.0.0.1"
    port: int = 1025
    subjects: list[str] = field(default_factory=list)  # care alerts
    operations_address: str = "operations@flk.local"  # InfraSettings.alertmanager_email_to's default
    operations_subjects: list[str] = field(default_factory=list)  # Alertmanager's operations alerts
    _controller: object = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        catcher = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                message = message_from_bytes(envelope.content)
                subject = str(make_header(decode_header(message.get("Subject", ""))))
                to_operations = catcher.operations_address.lower() in {r.lower() for r in envelope.rcpt_tos}
                (catcher.operations_subjects if to_operations else catcher.subjects).append(subject)
                return "250 OK"

        self._controller = Controller(Handler(), hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> int:
        return len(self.subjects)


@dataclass
class TeamsSink:
    """Accepts Workflows-webhook posts (202, like Teams) on http://host:port/teams, and Alertmanager's
    webhook posts (the operations receiver's Teams side) on http://host:port/operations."""

    host: str = "127.0.0.1"
    port: int = 8090
    cards: list[dict] = field(default_factory=list)  # care alerts
    operations: list[dict] = field(default_factory=list)  # Alertmanager's webhook payloads
    _runner: object = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/teams"

    async def start(self) -> None:
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            self.cards.append(await request.json())
            return web.Response(status=202)

        async def receive_operations(request: web.Request) -> web.Response:
            self.operations.append(await request.json())
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/teams", receive)
        app.router.add_post("/operations", receive_operations)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def received(self) -> int:
        return len(self.cards)

    @property
    def operations_url(self) -> str:
        return f"http://{self.host}:{self.port}/operations"

