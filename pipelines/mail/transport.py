"""Sending one message over SMTP (the standard library's client, in a worker thread)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from config.settings import Settings


class SendFailed(Exception):
    """The server refused the message or could not be reached; the text says which."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # none | starttls | tls
    username: str | None
    password: str | None
    sender: str
    timeout_s: float = 20.0

    @classmethod
    def of(cls, settings: Settings) -> SmtpConfig:
        if settings.smtp_host is None:
            raise ValueError("no SMTP server: start the embedded services or set FARM_SMTP_HOST")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_security,
                   settings.smtp_username, password, settings.mail_from)


class SmtpTransport:
    def __init__(self, config: SmtpConfig):
        self.config = config

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.config.sender, to, subject
        message["Message-ID"] = make_msgid(domain="studio-farm")
        message.set_content(body)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        c = self.config
        try:
            if c.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout_s, context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
            with client:
                if c.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if c.username:
                    client.login(c.username, c.password or "")
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # The server's words or the socket's, never the credentials.
            raise SendFailed(f"{type(exc).__name__}: {exc}"[:300]) from None
