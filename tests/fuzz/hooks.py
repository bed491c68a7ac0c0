"""schemathesis hooks of the fuzz test (loaded through SCHEMATHESIS_HOOKS by test_openapi.py).

One check: schemathesis's `positive_data_acceptance` (ST202, "a request the schema allows
is not refused"), except where the API applies a rule the schema cannot state: whether a
cursor was made by the server, a mention names an existing user, the current password is
right, the stored parts match the declared upload, a file's bytes are of a studio media
type. Such an answer carries an `error.code` that the operation documents for that status
(`x-codes`, or "Codes: `a`, `b`." in the response's description). A generic code
(`validation_failed`: the server's validation disagrees with the schema) or an undocumented
one still fails, with schemathesis's own report.
"""

from __future__ import annotations

import json
import re
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

# Codes that say "this request does not have the documented shape": never a rule beyond it.
GENERIC = frozenset({"validation_failed", "malformed_json", "unsupported_media_type",
                     "method_not_allowed", "payload_too_large"})
_CODES = re.compile(r"Codes?:\s*((?:`[a-z0-9_]+`[,\s]*)+)")


def documented_codes(operation: Any, status: int) -> set[str]:
    """The error codes `operation` declares for `status`."""
    declared = operation.definition.raw.get("responses", {}).get(str(status)) or {}
    if "x-codes" in declared:
        return set(declared["x-codes"])
    found = _CODES.search(declared.get("description", ""))
    return set(re.findall(r"`([a-z0-9_]+)`", found.group(1))) if found else set()


def error_code(response: Any) -> str | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


@schemathesis.check
def positive_data_acceptance_beyond_schema(ctx: Any, response: Any, case: Any) -> None:
    try:
        positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        code = error_code(response)
        if code in GENERIC or code not in documented_codes(case.operation, response.status_code):
            raise
