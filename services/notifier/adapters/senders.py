"""Delivery ports (:class:`EmailSender`, :class:`TeamsSender`) and their adapters.

A sender either returns a :class:`SendResult` (the server's answer: an HTTP status, possibly
not 2xx, or the SMTP reply code) or raises the client's exception (connection refused, SMTP
4yz/5yz, timeout); :func:`services.notifier.domain.retry.plan_retry` classifies both.
Senders never log or return the message body or the webhook URL.
"""
from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal, Protocol

from services.notifier.domain.messages import RenderedEmail


@dataclass(frozen=True)
class SendResult:
    http_status: int | None = None
    smtp_code: int | None = None
    retry_after: str | None = None

    @property
    def outcome(self) -> int:
        """What to classify: the HTTP status (SMTP success is 250-like, also 2xx)."""
        if self.http_status is not None:
            return self.http_status
        return self.smtp_code if self.smtp_code is not None else 250


class EmailSender(Protocol):
    async def send(self, email: RenderedEmail, *, message_id: str) -> SendResult: ...


class TeamsSender(Protocol):
    async def post(self, webhook_url: str, card: dict[str, Any], *, idempotency_key: str) -> SendResult: ...


# ---- email (aiosmtplib) ------------------------------------------------------------------------


def build_message(email: RenderedEmail, sender: str, message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(email.to)
    msg["Subject"] = email.subject
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    msg.set_content(email.text_body)
    msg.add_alternative(email.html_body, subtype="html")
    return msg


class SmtpEmailSender:
    def __init__(self, host: str, port: int, sender: str, *, tls: Literal["none", "starttls", "tls"] = "starttls",
                 username: str | None = None, password: str | None = None, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.tls, self.username, self.password, self.timeout_s = tls, username, password, timeout_s

    async def send(self, email: RenderedEmail, *, message_id: str) -> SendResult:
        import aiosmtplib

        message = build_message(email, self.sender, message_id)
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout_s,
            use_tls=self.tls == "tls", start_tls=self.tls == "starttls",
        )
        async with smtp:
            if self.username:
                await smtp.login(self.username, self.password or "")
            _refused, reply = await smtp.send_message(message)
        return SendResult(smtp_code=_reply_code(reply))


def _reply_code(reply: str) -> int:
    head = (reply or "").strip()[:3]
    return int(head) if head.isdigit() else 250


# ---- Teams (httpx, Workflows webhook) ----------------------------------------------------------


class HttpxTeamsSender:
    """POSTs the Adaptive Card message to a Teams Workflows webhook; any 2xx is success."""

    def __init__(self, timeout_s: float = 10.0, client: Any | None = None) -> None:
        import httpx

        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def post(self, webhook_url: str, card: dict[str, Any], *, idempotency_key: str) -> SendResult:
        response = await self._client.post(
            webhook_url, json=card, headers={"Idempotency-Key": idempotency_key},
        )
        return SendResult(http_status=response.status_code, retry_after=response.headers.get("retry-after"))

    async def aclose(self) -> None:
        await self._client.aclose()
