"""The role x action table: complete, least privilege, and the same as the docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.identity.permissions import (
    SESSION_ONLY,
    TABLE,
    UNVERIFIED_MAY,
    Action,
    Role,
    can,
    lowest,
    may_grant,
    rank,
    render_markdown,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "identity.md"


def test_every_action_has_a_row_and_admin_may_do_everything():
    assert set(TABLE) == set(Action)
    assert all(can(Role.ADMIN, action) for action in Action)


IDENTITY_ACTIONS = {a for a in Action if a.split(".")[0] in ("self", "user", "api_key", "audit")}


def test_artist_may_only_look_after_themselves_in_identity():
    allowed = {action for action in IDENTITY_ACTIONS if can(Role.ARTIST, action)}
    assert allowed == {Action.SELF_READ, Action.SELF_CHANGE_PASSWORD, Action.SELF_VERIFY_EMAIL,
                       Action.API_KEY_OWN}


def test_only_admins_administer_users_and_read_the_audit_log():
    admin_only = {Action.USER_CREATE, Action.USER_READ, Action.USER_UPDATE,
                  Action.USER_ASSIGN_ROLE, Action.API_KEY_MANAGE_ALL, Action.AUDIT_READ,
                  Action.USER_INVITE, Action.MAIL_READ}
    for action in admin_only:
        assert {role for role in Role if can(role, action)} == {Role.ADMIN}


@pytest.mark.parametrize("role", ["", "root", "ADMIN", None, 3])
def test_unknown_roles_may_do_nothing(role):
    assert not any(can(role, action) for action in Action)  # type: ignore[arg-type]


def test_api_keys_never_perform_session_only_actions():
    for action in SESSION_ONLY:
        assert can(Role.ADMIN, action)
        assert not can(Role.ADMIN, action, via_api_key=True)
    assert can(Role.ADMIN, Action.USER_CREATE, via_api_key=True)


def test_ranks_order_roles_and_bound_what_may_be_granted():
    order = [Role.ADMIN, Role.PRODUCER, Role.DIRECTOR, Role.SUPERVISOR, Role.TD, Role.ARTIST]
    assert [rank(r) for r in order] == sorted((rank(r) for r in order), reverse=True)
    assert may_grant(Role.TD, Role.ARTIST) and may_grant(Role.TD, Role.TD)
    assert not may_grant(Role.TD, Role.SUPERVISOR)
    assert lowest(Role.ADMIN, Role.TD) == Role.TD == lowest(Role.TD, Role.PRODUCER)


def test_the_documented_table_is_the_table_in_code():
    documented = DOCS.read_text(encoding="utf-8")
    missing = [row for row in render_markdown().splitlines() if row not in documented]
    assert not missing, "docs/identity.md needs these rows of render_markdown():\n" + "\n".join(
        missing)
    rows = [line for line in documented.splitlines() if line.startswith("| `") and (
        " yes |" in line or " - |" in line)]
    stale = [row for row in rows if row not in render_markdown()]
    assert not stale, f"rows in docs/identity.md that the code no longer has: {stale}"


def test_an_unconfirmed_account_may_only_read_itself_and_confirm():
    assert {Action.SELF_READ, Action.SELF_VERIFY_EMAIL} == UNVERIFIED_MAY
