"""Opaque cursors: they round-trip, and garbage is a clean 422, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.errors import InvalidInput
from pipelines.paging import decode_cursor, encode_cursor


@pytest.mark.parametrize("value", [1712345678.125, 7, "alpha tree",
                                   datetime(2026, 11, 21, 15, 0, tzinfo=UTC)])
def test_round_trip(value):
    assert decode_cursor(encode_cursor("f", value, "abc"), "f") == (value, "abc")


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", encode_cursor("f", 1, "x")[:-3],
                                    "WyJhIiwgImIiXQ", "WzEsMl0", "e30",
                                    encode_cursor("other_field", 1, "x")])
def test_garbage_is_invalid_input(cursor):
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor, "f")
    assert caught.value.code == "invalid_cursor"


def test_only_plain_values_can_be_paged_on():
    with pytest.raises(TypeError):
        encode_cursor("f", True, "x")
