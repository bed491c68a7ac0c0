"""Opaque cursors: they round-trip, and garbage is a clean 422, never a crash."""

from __future__ import annotations

import pytest

from pipelines.errors import InvalidInput
from pipelines.identity.paging import decode_cursor, encode_cursor


def test_round_trip():
    assert decode_cursor(encode_cursor(1712345678.125, "abc")) == (1712345678.125, "abc")


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", encode_cursor(1, "x")[:-3],
                                    "WyJhIiwgImIiXQ", "WzEsMl0", "e30"])
def test_garbage_is_invalid_input(cursor):
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor)
    assert caught.value.code == "invalid_cursor"
