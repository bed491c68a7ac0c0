"""The messages accounts receive, worded once, queued in the outbox (never sent inline)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pipelines.mail.outbox import Outbox


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M UTC")


class AccountMail:
    def __init__(self, outbox: Outbox, app_url: str):
        self.outbox, self.app_url = outbox, app_url.rstrip("/")

    def _link(self, page: str, token: str) -> str:
        return f"{self.app_url}/{page}?token={quote(token)}"

    async def verification_code(self, user: dict[str, Any], studio: dict[str, Any],
                                code: str, expires_at_s: float) -> None:
        await self.outbox.queue(user["studio_id"], "verification", user["email"],
                                "Confirm your email for Studio Farm", (
            f"Hello {user['name']},\n\nyour code to confirm this email for {studio['name']} "
            f"on Studio Farm is\n\n    {code}\n\nIt works once, until {_when(expires_at_s)}. "
            "If you did not sign up, ignore this message.\n"))

    async def invitation(self, user: dict[str, Any], studio: dict[str, Any], inviter: str,
                         token: str, expires_at_s: float) -> None:
        await self.outbox.queue(user["studio_id"], "invitation", user["email"],
                                f"{inviter} invited you to {studio['name']} on Studio Farm", (
            f"Hello {user['name']},\n\n{inviter} invited you to join {studio['name']} on "
            f"Studio Farm as {user['role']}. Choose your password here:\n\n"
            f"    {self._link('accept-invite', token)}\n\n"
            f"The link works once, until {_when(expires_at_s)}.\n"))

    async def password_reset(self, user: dict[str, Any], studio: dict[str, Any], token: str,
                             expires_at_s: float) -> None:
        await self.outbox.queue(user["studio_id"], "password_reset", user["email"],
                                "Reset your Studio Farm password", (
            f"Hello {user['name']},\n\nsomeone asked to reset your password for "
            f"{studio['name']} on Studio Farm. To choose a new one, open\n\n"
            f"    {self._link('reset-password', token)}\n\n"
            f"The link works once, until {_when(expires_at_s)}. If it was not you, ignore "
            "this message: your password stays as it is.\n"))

    async def password_changed(self, user: dict[str, Any], studio: dict[str, Any]) -> None:
        await self.outbox.queue(user["studio_id"], "password_changed", user["email"],
                                "Your Studio Farm password changed", (
            f"Hello {user['name']},\n\nthe password of your account for {studio['name']} on "
            "Studio Farm was changed, and every session of yours was ended. If this was not "
            "you, reset your password now and tell your studio's admin.\n"))
