"""Reading what the embedded SMTP server kept (pipelines/mail/devserver.py): one `.eml`
file per message, in the data dir's `mail` folder, as a developer reads them."""

from __future__ import annotations

import asyncio
import re
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx


class Mailbox:
    def __init__(self, folder: Path):
        self.folder = folder

    def messages(self, to: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.folder.glob("*.eml")) if self.folder.exists() else []:
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if message["To"] == to:
                found.append(message)  # type: ignore[arg-type]
        return found

    async def wait(self, to: str, subject: str = "", count: int = 1,
                   timeout_s: float = 60) -> EmailMessage:
        """The `count`-th message to `to` whose subject holds `subject`, once delivered."""
        deadline = time.monotonic() + timeout_s
        while True:
            matching = [m for m in self.messages(to) if subject in m["Subject"]]
            if len(matching) >= count:
                return matching[count - 1]
            assert time.monotonic() < deadline, f"no mail {subject!r} to {to} in {timeout_s} s"
            await asyncio.sleep(0.2)


def body(message: EmailMessage) -> str:
    return message.get_content()  # type: ignore[no-any-return]


def code_in(message: EmailMessage) -> str:
    [code] = re.findall(r"^[ \t]+(\d{6})[ \t\r]*$", body(message), re.MULTILINE)
    return code


def token_in(message: EmailMessage) -> str:
    [token] = re.findall(r"\?token=([A-Za-z0-9_%-]+)", body(message))
    return token


async def verify_email(http: httpx.AsyncClient, mailbox: Mailbox, email: str,
                       headers: dict[str, str]) -> None:
    """What a new user does after signing up: the emailed code, entered."""
    code = code_in(await mailbox.wait(email, "Confirm your email"))
    response = await http.post("/api/v1/auth/verify", json={"code": code}, headers=headers)
    assert response.status_code == 200 and response.json()["email_verified"], response.text
