"""The Ray cluster's auth token: where `farm up` keeps it, and how `farm join` finds it.

Ray reads `RAY_AUTH_MODE`, `RAY_AUTH_TOKEN` and `RAY_AUTH_TOKEN_PATH` when it is imported,
so these functions run before `import ray`, and they never import it themselves.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE_NAME = "ray-token"


class TokenMissing(Exception):
    """No token where one was asked for: the message says where to put one."""


def prepare_local_token(data_dir: Path) -> Path | None:
    """For a cluster `farm up` starts itself: token auth on, with a token kept in the data
    dir (made once, mode 0600) unless the environment names another. Returns the file a
    render node needs, or None when the token comes from `RAY_AUTH_TOKEN` or auth is off."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return None
    os.environ["RAY_AUTH_MODE"] = "token"
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or data_dir / TOKEN_FILE_NAME).resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    return path


def use_join_token(token_file: str | None) -> str:
    """For a node joining a cluster: the token from `--token-file`, else from
    `RAY_AUTH_TOKEN` or `RAY_AUTH_TOKEN_PATH`. Returns where it came from, for the log."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return "none (RAY_AUTH_MODE=disabled)"
    os.environ["RAY_AUTH_MODE"] = "token"
    if token_file:
        path = Path(token_file).expanduser().resolve()
        if not path.is_file() or not path.read_text().strip():
            raise TokenMissing(f"token file {path} is missing or empty")
        os.environ.pop("RAY_AUTH_TOKEN", None)
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
        return str(path)
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if named and Path(named).expanduser().is_file():
        return named
    raise TokenMissing("no cluster token: pass --token-file (the head's `farm up` prints its "
                       "path) or set RAY_AUTH_TOKEN")
