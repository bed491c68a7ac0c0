"""Studio Farm from Python: the client library of TDs and pipeline scripts.

Installable on its own (`pip install ./client`: httpx, pydantic, websockets); see
docs/td-guide.md."""

from studio_farm.client import AsyncFarm, Farm
from studio_farm.errors import (
    Conflict,
    FarmError,
    InvalidInput,
    JobFailed,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from studio_farm.jobs import LayeredJob, depends_on

__all__ = ["AsyncFarm", "Conflict", "Farm", "FarmError", "InvalidInput", "JobFailed",
           "LayeredJob", "NotFound", "PermissionDenied", "RateLimited", "Unauthenticated",
           "Unavailable", "depends_on"]
