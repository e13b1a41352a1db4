"""Stand-ins for the outside world in the demo: a mail catcher (aiosmtpd) and a Teams sink.

They only count what arrives and keep the subjects/titles (alerts carry counts, never a
patient identifier), so the summary can say how many alerts actually left the notifier.
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
    subjects: list[str] = field(default_factory=list)
    _controller: object = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        catcher = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                message = message_from_bytes(envelope.content)
                catcher.subjects.append(str(make_header(decode_header(message.get("Subject", "")))))
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
    """Accepts Workflows-webhook posts (202, like Teams) on http://host:port/teams."""

    host: str = "127.0.0.1"
    port: int = 8090
    cards: list[dict] = field(default_factory=list)
    _runner: object = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/teams"

    async def start(self) -> None:
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            self.cards.append(await request.json())
            return web.Response(status=202)

        app = web.Application()
        app.router.add_post("/teams", receive)
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

