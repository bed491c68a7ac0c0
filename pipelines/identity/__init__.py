"""Studios, users, roles, sessions (rotating refresh tokens), API keys and the audit log.

The studio is the tenant: every query is scoped by the studio id of a verified credential.
See docs/identity.md.
"""
