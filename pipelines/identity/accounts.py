"""What login and user administration both work on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.identity.audit import AuditLog
from pipelines.identity.passwords import PasswordHasher
from pipelines.identity.sessions import Sessions
from pipelines.identity.throttle import LoginThrottle


@dataclass
class AccountService:
    studios: Any
    users: Any
    hasher: PasswordHasher
    sessions: Sessions
    throttle: LoginThrottle
    audit: AuditLog
    clock: Callable[[], float] = time.time
    verification: Any = None  # EmailVerification, once Identity has made it
    mail: Any = None  # AccountMail
