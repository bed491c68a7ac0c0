"""Integers a request may carry into a query: MongoDB and its driver hold 64-bit integers
only, and a larger one raises `OverflowError` deep in the driver (a 500) instead of a 422."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_INT64 = 2**63 - 1

VersionNumber = Annotated[int, Field(ge=1, le=MAX_INT64, description="A version number, from 1.")]
