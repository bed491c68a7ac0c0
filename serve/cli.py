"""The `farm` command."""

from __future__ import annotations

import argparse

from config.loader import load_settings_or_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm", description="Studio Farm backend and tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole backend (embedded services when unset)")
    commands.add_parser("check-config", help="validate FARM_* settings and exit")
    sample = commands.add_parser("sample-scene", help="write a small animated .blend file")
    sample.add_argument("path")
    sample.add_argument("--frames", type=int, default=48)
    args = parser.parse_args(argv)

    settings = load_settings_or_exit()
    if args.command == "check-config":
        print("settings ok")
        return 0
    if args.command == "sample-scene":
        return _sample_scene(args.path, args.frames, settings.blender)
    from serve.launcher import up

    return up(settings)


def _sample_scene(path: str, frames: int, blender: str | None) -> int:
    from pipelines.render.sample_scene import write_in_subprocess

    done = write_in_subprocess(path, frames=frames, blender=blender)
    if done.returncode != 0:
        print((done.stderr or done.stdout).strip()[-2000:])
        return done.returncode or 1
    print(done.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
