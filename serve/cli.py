"""The `farm` command."""

from __future__ import annotations

import argparse

from config.loader import load_settings_or_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm", description="Studio Farm backend and tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole backend (embedded services when unset)")
    commands.add_parser("check-config", help="validate FARM_* settings and exit")
    args = parser.parse_args(argv)

    settings = load_settings_or_exit()
    if args.command == "check-config":
        print("settings ok")
        return 0
    from serve.launcher import up

    return up(settings)


if __name__ == "__main__":
    raise SystemExit(main())
