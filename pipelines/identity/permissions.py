"""The one table that decides who may do what: role x action.

Routes never test roles themselves; they ask `can(role, action)` through a dependency.
A new route adds its action here (and a row in the authorization-matrix test).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PRODUCER = "producer"
    DIRECTOR = "director"
    SUPERVISOR = "supervisor"
    TD = "td"
    ARTIST = "artist"


# Higher ranks may grant lower or equal roles (API keys, user creation), never higher.
_RANK = {
    Role.ADMIN: 60,
    Role.PRODUCER: 50,
    Role.DIRECTOR: 40,
    Role.SUPERVISOR: 30,
    Role.TD: 20,
    Role.ARTIST: 10,
}


class Action(StrEnum):
    SELF_READ = "self.read"
    SELF_CHANGE_PASSWORD = "self.change_password"
    SELF_VERIFY_EMAIL = "self.verify_email"
    USER_CREATE = "user.create"
    USER_READ = "user.read"
    USER_UPDATE = "user.update"
    USER_ASSIGN_ROLE = "user.assign_role"
    USER_INVITE = "user.invite"
    MAIL_READ = "mail.read"
    API_KEY_CREATE = "api_key.create"
    API_KEY_OWN = "api_key.own"
    API_KEY_MANAGE_ALL = "api_key.manage_all"
    AUDIT_READ = "audit.read"
    ASSET_READ = "asset.read"
    ASSET_CREATE = "asset.create"
    ASSET_EDIT_OWN = "asset.edit_own"
    ASSET_EDIT_ANY = "asset.edit_any"
    REVIEW_COMMENT = "review.comment"
    REVIEW_DECIDE = "review.decide"
    EVENT_READ = "event.read"
    JOB_READ = "job.read"
    JOB_SUBMIT = "job.submit"
    JOB_SUBMIT_COMMAND = "job.submit_command"
    JOB_MANAGE_ANY = "job.manage_any"
    FARM_READ = "farm.read"
    FARM_NODE_MANAGE = "farm.node_manage"
    ANALYTICS_READ = "analytics.read"


_EVERYONE = frozenset(Role)
_ADMIN = frozenset({Role.ADMIN})

TABLE: dict[Action, frozenset[Role]] = {
    Action.SELF_READ: _EVERYONE,
    Action.SELF_CHANGE_PASSWORD: _EVERYONE,
    Action.SELF_VERIFY_EMAIL: _EVERYONE,
    Action.USER_CREATE: _ADMIN,
    Action.USER_READ: _ADMIN,
    Action.USER_UPDATE: _ADMIN,
    Action.USER_ASSIGN_ROLE: _ADMIN,
    # Inviting, listing and revoking invitations; the invitee's role is capped by may_grant.
    Action.USER_INVITE: _ADMIN,
    # The studio's outgoing mail (no bodies: they carry codes and links), and sending a
    # failed message again.
    Action.MAIL_READ: _ADMIN,
    # Pipeline scripts are written by TDs and their supervisors; producers script reports.
    Action.API_KEY_CREATE: frozenset({Role.ADMIN, Role.PRODUCER, Role.SUPERVISOR, Role.TD}),
    # Everyone may list and revoke the keys they own, even after losing the right to create.
    Action.API_KEY_OWN: _EVERYONE,
    Action.API_KEY_MANAGE_ALL: _ADMIN,
    Action.AUDIT_READ: _ADMIN,
    Action.ASSET_READ: _EVERYONE,
    Action.ASSET_CREATE: _EVERYONE,
    # Editing covers fields, uploads of new versions and soft delete; the owner check is
    # the service's, since it needs the asset.
    Action.ASSET_EDIT_OWN: _EVERYONE,
    Action.ASSET_EDIT_ANY: frozenset({Role.ADMIN, Role.PRODUCER}),
    # Everyone comments (edits and deletes are the author's: the service checks that).
    Action.REVIEW_COMMENT: _EVERYONE,
    # Approving or requesting changes moves an asset's status: the people who sign off.
    Action.REVIEW_DECIDE: frozenset({Role.ADMIN, Role.PRODUCER, Role.DIRECTOR,
                                     Role.SUPERVISOR}),
    # Live events and their replay (studio rooms and the caller's own personal room).
    Action.EVENT_READ: _EVERYONE,
    Action.JOB_READ: _EVERYONE,
    # Preview (and, later, render) jobs are for everyone; a command runs arbitrary
    # programs on farm nodes, so only TDs and admins may submit one.
    Action.JOB_SUBMIT: _EVERYONE,
    Action.JOB_SUBMIT_COMMAND: frozenset({Role.ADMIN, Role.TD}),
    # Everyone steers their own jobs; these roles steer anyone's in their studio.
    Action.JOB_MANAGE_ANY: frozenset({Role.ADMIN, Role.PRODUCER, Role.SUPERVISOR}),
    Action.FARM_READ: frozenset({Role.ADMIN, Role.PRODUCER, Role.SUPERVISOR, Role.TD}),
    # Locking, draining and labelling nodes: the people who look after the farm.
    Action.FARM_NODE_MANAGE: frozenset({Role.ADMIN, Role.SUPERVISOR, Role.TD}),
    # The studio's figures: farm use, failures, storage, review turnaround.
    Action.ANALYTICS_READ: frozenset({Role.ADMIN, Role.PRODUCER}),
}

# Actions an API key may never perform, whatever its role: a leaked key must not be able
# to mint further keys (persistence) or change its owner's password (account takeover).
SESSION_ONLY: frozenset[Action] = frozenset({Action.API_KEY_CREATE, Action.SELF_CHANGE_PASSWORD})


# What an account whose email is not confirmed yet may do: see itself, and confirm it
# (docs/accounts.md). Everything else answers 403 `email_unverified`.
UNVERIFIED_MAY: frozenset[Action] = frozenset({Action.SELF_READ, Action.SELF_VERIFY_EMAIL})


def can(role: Role | str, action: Action, *, via_api_key: bool = False) -> bool:
    """True when `role` may perform `action`; unknown roles may do nothing."""
    try:
        role = Role(role)
    except ValueError:
        return False
    if via_api_key and action in SESSION_ONLY:
        return False
    return role in TABLE.get(action, frozenset())


def rank(role: Role | str) -> int:
    return _RANK[Role(role)]


def may_grant(granter: Role | str, granted: Role | str) -> bool:
    """A role may hand out (to a user or a key) only roles no higher than itself."""
    return rank(granted) <= rank(granter)


def lowest(first: Role | str, second: Role | str) -> Role:
    return Role(first) if rank(first) <= rank(second) else Role(second)


def render_markdown() -> str:
    """The table as Markdown, so the docs can be checked against the code."""
    roles = list(Role)
    lines = [
        "| action | " + " | ".join(roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for action in Action:
        cells = ["yes" if role in TABLE[action] else "-" for role in roles]
        marker = " (session only)" if action in SESSION_ONLY else ""
        lines.append(f"| `{action}`{marker} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
