"""Access-token attacks against the plain class, with a fixed clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest

from pipelines.errors import Unauthenticated
from pipelines.identity.permissions import Role
from pipelines.identity.tokens import (
    API_KEY_PREFIX,
    REFRESH_PREFIX,
    AccessTokens,
    digest,
    new_secret,
)

SECRET = "unit-test-secret-that-is-long-enough-for-hs512-0123456789abcdefghijk"
NOW = 1_900_000_000.0


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock) -> AccessTokens:
    return AccessTokens(SECRET, "studio-farm", "studio-farm-api", 900, clock)


def claims(**overrides) -> dict:
    base = {"sub": "u1", "studio_id": "s1", "role": "admin", "jti": "j1", "iss": "studio-farm",
            "aud": "studio-farm-api", "typ": "access", "iat": NOW, "exp": NOW + 900, "sid": "f1"}
    return {k: v for k, v in (base | overrides).items() if v is not None}


def forge(payload: dict, key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def sign_by_hand(payload: dict, key: str = SECRET) -> str:
    """For payloads the library refuses to encode (a list as `iss`)."""
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(payload)}"
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def refused(tokens: AccessTokens, token: str, code: str = "invalid_token") -> None:
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(token)
    assert caught.value.code == code


def test_round_trip(tokens):
    token, issued = tokens.issue(user_id="u1", studio_id="s1", role=Role.TD, session_id="f1")
    verified = tokens.verify(token)
    assert verified == issued
    assert verified.role is Role.TD and verified.session_id == "f1"
    assert verified.expires_at - verified.issued_at == 900
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_a_token_forged_with_our_own_claims_verifies(tokens):
    assert tokens.verify(forge(claims())).user_id == "u1"  # the forge helper itself is right


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none_in_any_case_is_refused(tokens, alg, signature):
    token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}.{signature}"
    refused(tokens, token)


@pytest.mark.parametrize("key, algorithm", [
    ("another-key-entirely-another-key-entirely", "HS256"),
    (SECRET, "HS384"),
    (SECRET, "HS512"),
])
def test_other_keys_and_unpinned_algorithms_are_refused(tokens, key, algorithm):
    refused(tokens, forge(claims(), key, algorithm))


@pytest.mark.parametrize("overrides", [
    {"aud": "another-api"},
    {"aud": ["studio-farm-api", "another-api"]},
    {"aud": "studio-farm"},
    {"iss": "evil"},
    {"iss": "studio-f"},             # a prefix of ours
    {"iss": "studio-farm-evil"},     # ours is a prefix of it
    {"typ": "refresh"},
    {"typ": "ACCESS"},
    {"role": "root"},
    {"iat": NOW + 3600},             # issued in the future
    {"exp": NOW + 86400},            # lives longer than we ever issue
    {"exp": "never"},
    {"sub": ""},
])
def test_tampered_claims_are_refused(tokens, overrides):
    refused(tokens, forge(claims(**overrides)))


def test_a_list_as_issuer_is_refused(tokens):
    assert tokens.verify(sign_by_hand(claims())).user_id == "u1"
    refused(tokens, sign_by_hand(claims(iss=["studio-farm"])))


@pytest.mark.parametrize("missing", ["sub", "studio_id", "role", "jti", "iss", "aud", "typ",
                                     "iat", "exp", "sid"])
def test_every_claim_is_required(tokens, missing):
    refused(tokens, forge(claims(**{missing: None})))


def test_expiry_follows_the_injected_clock(tokens, clock):
    token, _ = tokens.issue(user_id="u1", studio_id="s1", role=Role.ARTIST, session_id="f1")
    clock.now += 899
    tokens.verify(token)
    clock.now += 1
    refused(tokens, token, "token_expired")


def test_refresh_tokens_and_api_keys_are_not_access_tokens(tokens):
    for secret in (new_secret(REFRESH_PREFIX), new_secret(API_KEY_PREFIX), "", "a.b.c",
                   "x" * 5000):
        refused(tokens, secret)


def test_opaque_secrets_are_random_prefixed_and_stored_as_sha256():
    first, second = new_secret(REFRESH_PREFIX), new_secret(REFRESH_PREFIX)
    assert first != second and first.startswith("sfr_") and len(first) > 40
    assert digest(first) != first and len(digest(first)) == 64
    assert digest(first) == digest(first)
