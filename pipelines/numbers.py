"""Integers a request may carry into a query: MongoDB and its driver hold 64-bit integers
only, and a larger one raises `OverflowError` deep in the driver (a 500) instead of a 422."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, Strict

MAX_INT64 = 2**63 - 1

# Request body fields: numbers and booleans as the schema states them. Pydantic's lax mode
# would take `false` as 0 and "7" as 7; strict mode takes neither (an integer may still be
# given where a float is expected).
def _integral(value: object) -> object:
    """JSON Schema counts 45.0 as an integer (the schema's word), so the field does too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, Strict(), BeforeValidator(_integral)]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]

VersionNumber = Annotated[Int, Field(ge=1, le=MAX_INT64, description="A version number, from 1.")]
