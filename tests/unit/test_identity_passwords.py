"""Password rules (8 to 72 bytes of UTF-8, never truncated) and the bcrypt wrapper."""

from __future__ import annotations

import bcrypt
import pytest
from pydantic_core import PydanticCustomError

from pipelines.identity import passwords
from pipelines.identity.passwords import PasswordHasher, check_password_rules, hash_cost


@pytest.mark.parametrize("password", ["a" * 8, "a" * 72, "🎬🎬", "é" * 36, "x" * 71 + "!"])
def test_accepted_passwords(password):
    assert check_password_rules(password) == password


@pytest.mark.parametrize("password", [
    "a" * 7, "a" * 73, "🎬" * 64, "é" * 37, "🎬" * 18 + "a", "",
])
def test_refused_passwords(password):
    with pytest.raises((ValueError, PydanticCustomError), match="bytes"):
        check_password_rules(password)


def test_a_password_too_long_has_its_own_code():
    with pytest.raises(PydanticCustomError) as refused:
        check_password_rules("é" * 37)  # 37 characters, 74 bytes
    assert refused.value.type == "password_too_long"


def test_text_that_is_not_utf8_is_refused_not_crashed():
    with pytest.raises(ValueError, match="UTF-8"):
        check_password_rules("abcdefgh\ud800")


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(rounds=4)


async def test_hash_and_verify(hasher):
    hashed = await hasher.hash("a" * 72)
    assert hash_cost(hashed) == 4
    assert await hasher.verify("a" * 72, hashed)
    assert not await hasher.verify("a" * 71, hashed)


async def test_longer_passwords_never_match_by_prefix(hasher):
    hashed = await hasher.hash("p" * 72)
    for longer in ("p" * 73, "p" * 72 + "🎬", "p" * 200):
        assert not await hasher.verify(longer, hashed)


async def test_unknown_accounts_and_unusable_input_still_cost_one_bcrypt(hasher, monkeypatch):
    calls = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(passwords.bcrypt, "checkpw", counting)
    stored = await hasher.hash("right password")
    assert not await hasher.verify("right password", None)      # unknown account
    assert not await hasher.verify("x" * 100, stored)             # too long
    assert not await hasher.verify("bad\ud800text", stored)       # not UTF-8
    assert not await hasher.verify("wrong password", stored)      # wrong
    assert len(calls) == 4
    assert all(hash_cost(h.decode()) == 4 for h in calls)


async def test_passwords_are_compared_after_nfkc(hasher):
    hashed = await hasher.hash("ﬁnal cut pro")  # the "fi" ligature
    assert await hasher.verify("final cut pro", hashed)


def test_rehash_is_needed_when_the_cost_was_raised():
    old = bcrypt.hashpw(b"password1", bcrypt.gensalt(4)).decode()
    assert PasswordHasher(rounds=5).needs_rehash(old)
    assert not PasswordHasher(rounds=4).needs_rehash(old)
