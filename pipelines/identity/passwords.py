"""Password rules and bcrypt, run off the event loop.

bcrypt reads at most 72 bytes. Older versions cut longer passwords silently (so any
password sharing the first 72 bytes logged in); bcrypt 5 raises instead. We refuse them
up front with a clear message and never truncate.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata

import bcrypt
from pydantic_core import PydanticCustomError

MIN_PASSWORD_BYTES = 8
MAX_PASSWORD_BYTES = 72
# What a login request may carry at all; longer input is refused before any hashing.
MAX_LOGIN_PASSWORD_CHARS = 1024

_COST = re.compile(r"^\$2[abxy]\$(\d{2})\$")


def password_bytes(password: str) -> bytes:
    """NFKC first (NIST SP 800-63B), so the same password typed on two systems matches.

    Raises ValueError for text that is not encodable as UTF-8 (lone surrogates from JSON).
    """
    try:
        return unicodedata.normalize("NFKC", password).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("password is not valid UTF-8 text") from exc


def check_password_rules(password: str) -> str:
    """Pydantic validator for new passwords: 8 to 72 bytes of UTF-8."""
    size = len(password_bytes(password))
    if size < MIN_PASSWORD_BYTES:
        raise ValueError(f"password must be at least {MIN_PASSWORD_BYTES} bytes of UTF-8")
    if size > MAX_PASSWORD_BYTES:
        # Its own code: the schema can state the limit only in characters (see models.py).
        raise PydanticCustomError(
            "password_too_long",
            "password must be at most {limit} bytes of UTF-8 (it is {size}); longer "
            "passwords are refused, never shortened", {"limit": MAX_PASSWORD_BYTES, "size": size})
    return password


def hash_cost(hashed: str) -> int:
    match = _COST.match(hashed)
    return int(match.group(1)) if match else 0


class PasswordHasher:
    """bcrypt with a configurable cost; unknown accounts are checked against a dummy hash."""

    def __init__(self, rounds: int):
        self.rounds = rounds
        self._dummy: bytes | None = None

    async def hash(self, password: str) -> str:
        raw = password_bytes(check_password_rules(password))
        salt = bcrypt.gensalt(self.rounds)
        return (await asyncio.to_thread(bcrypt.hashpw, raw, salt)).decode("ascii")

    async def verify(self, password: str, hashed: str | None) -> bool:
        """False for a wrong password, an unusable one, or no account (hashed=None).

        Every path runs one bcrypt check of the same cost, so the answer's timing does
        not tell an unknown account from a wrong password.
        """
        target = hashed.encode("ascii") if hashed else await self._dummy_hash()
        try:
            raw = password_bytes(password)
        except ValueError:
            raw = b""
        usable = MIN_PASSWORD_BYTES <= len(raw) <= MAX_PASSWORD_BYTES
        candidate = raw if usable else b"\x00" * MIN_PASSWORD_BYTES
        matched = await asyncio.to_thread(bcrypt.checkpw, candidate, target)
        return bool(matched and usable and hashed)

    def needs_rehash(self, hashed: str) -> bool:
        return hash_cost(hashed) < self.rounds

    async def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            salt = bcrypt.gensalt(self.rounds)
            self._dummy = await asyncio.to_thread(bcrypt.hashpw, b"no-such-account", salt)
        return self._dummy
