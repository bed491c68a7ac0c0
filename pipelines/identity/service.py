"""The identity services wired together from a database, the settings and a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from pipelines.identity.account_mail import AccountMail
from pipelines.identity.api_keys import ApiKeys
from pipelines.identity.audit import AuditLog
from pipelines.identity.authn import Authenticator
from pipelines.identity.invitations import INVITATIONS, Invitations
from pipelines.identity.login import Login
from pipelines.identity.passwords import PasswordHasher
from pipelines.identity.records import (
    API_KEYS,
    AUDIT,
    FAMILIES,
    REFRESH_TOKENS,
    STUDIOS,
    USERS,
)
from pipelines.identity.resets import RESETS, PasswordResets
from pipelines.identity.sessions import Sessions
from pipelines.identity.throttle import LoginThrottle, ThrottlePolicy
from pipelines.identity.tokens import AccessTokens
from pipelines.identity.users import Users
from pipelines.identity.verification import CODES, EmailVerification
from pipelines.mail.outbox import OUTBOX, Outbox
from pipelines.ratelimit import COLLECTION as RATE_WINDOWS


class Identity:
    """`db` is anything that hands out collections by name (pipelines.db.Database)."""

    def __init__(self, db: Any, settings: Settings, *, clock: Callable[[], float] = time.time,
                 throttle: ThrottlePolicy | None = None):
        self.audit = AuditLog(db[AUDIT], clock)
        self.hasher = PasswordHasher(settings.bcrypt_rounds)
        self.access = AccessTokens(
            settings.jwt_secret.get_secret_value(), settings.jwt_issuer, settings.jwt_audience,
            settings.access_token_ttl_s, clock,
        )
        self.throttle = LoginThrottle(db[RATE_WINDOWS], throttle, clock)
        self.sessions = Sessions(
            db[FAMILIES], db[REFRESH_TOKENS], db[USERS], self.access, self.audit,
            ttl_s=settings.refresh_token_ttl_s, idle_s=settings.refresh_token_idle_s, clock=clock,
        )
        self.outbox = Outbox(db[OUTBOX], max_attempts=settings.mail_max_attempts,
                             retry_initial_s=settings.mail_retry_initial_s, clock=clock)
        self.mail = AccountMail(self.outbox, settings.app_url)
        self.verification = EmailVerification(
            db[CODES], db[USERS], db[STUDIOS], self.mail, self.audit,
            settings.jwt_secret.get_secret_value(), required=settings.email_verification,
            clock=clock)
        common = (db[STUDIOS], db[USERS], self.hasher, self.sessions, self.throttle, self.audit)
        self.users = Users(*common, clock=clock, verification=self.verification,
                           mail=self.mail)
        self.login = Login(*common, clock=clock)
        self.invitations = Invitations(db[INVITATIONS], self.users, self.sessions, self.hasher,
                                       self.mail, clock)
        self.resets = PasswordResets(db[RESETS], self.users, self.sessions, self.mail, clock)
        self.api_keys = ApiKeys(db[API_KEYS], db[USERS], self.audit, clock)
        self.authenticator = Authenticator(self.access, db[USERS], self.sessions, self.api_keys)
