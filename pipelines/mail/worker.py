"""Sends what the outbox holds: one message at a time per worker, retried with backoff.

Every platform process runs one (pipelines/mail/outbox.py claims each message for one
sender); a failed message is logged by id and kind, never with its body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from pipelines.mail.outbox import Outbox
from pipelines.mail.transport import SendFailed, SmtpTransport

log = logging.getLogger("farm.mail")


class MailWorker:
    def __init__(self, outbox: Outbox, transport: SmtpTransport,
                 before: Callable[[], Awaitable[object]] | None = None):
        self.outbox, self.transport = outbox, transport
        self.before = before  # work that queues mail (password reset requests)

    async def run_once(self, most: int = 20) -> int:
        """Send up to `most` due messages; how many were sent."""
        if self.before is not None:
            await self.before()
        sent = 0
        for _ in range(most):
            message = await self.outbox.claim()
            if message is None:
                break
            try:
                await self.transport.send(message.to, message.subject, message.body)
            except SendFailed as exc:
                failed = await self.outbox.not_sent(message, str(exc))
                log.warning("mail not sent", extra={"mail_id": message.id,
                                                    "attempt": message.attempts,
                                                    "failed_for_good": failed,
                                                    "error": str(exc)})
                continue
            await self.outbox.sent(message)
            sent += 1
        return sent
