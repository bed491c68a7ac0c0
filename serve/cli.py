"""The `farm` command: the client's commands (`studio_farm.cli`: login, upload, submit,
jobs, ...) and, where the backend is installed, the backend's own (up, join, ...)."""

from __future__ import annotations

import argparse

from studio_farm import cli as client

from config.loader import load_settings_or_exit

SERVER_COMMANDS = ("up", "join", "check-config", "sample-scene")


def main(argv: list[str] | None = None) -> int:
    parser, commands = client.parser()
    commands.add_parser("up", help="start the whole backend (embedded services when unset)")
    join = commands.add_parser(
        "join", help="make this machine a render node of a running farm (Ctrl-C leaves)",
        description="Join the Ray cluster of a running farm as a render node. The token "
        "comes from --token-file, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH.")
    join.add_argument("head", help="the cluster address `farm up` prints, HOST[:PORT]")
    join.add_argument("--slots", type=float, default=None,
                      help="farm slots (tasks at once; default: this machine's CPUs)")
    join.add_argument("--gpus", type=int, default=None, help="GPUs to offer (default: detected)")
    join.add_argument("--cpus", type=int, default=None, help="CPUs Ray sees (default: all)")
    join.add_argument("--tag", dest="tags", action="append", default=[],
                      help="a tag tasks may require (repeatable), e.g. --tag gpu-a100")
    join.add_argument("--name", default=None, help="this node's name (default: host name)")
    join.add_argument("--token-file", default=None, help="the cluster's auth token file")
    commands.add_parser("check-config", help="validate FARM_* settings and exit")
    sample = commands.add_parser("sample-scene", help="write a small animated .blend file")
    sample.add_argument("path")
    sample.add_argument("--frames", type=int, default=48)
    args = client.parse(parser, argv)

    if args.command not in SERVER_COMMANDS:
        return client.run(parser, args)
    if args.command == "join":
        return _join(args)
    settings = load_settings_or_exit()
    if args.command == "check-config":
        print("settings ok")
        return 0
    if args.command == "sample-scene":
        return _sample_scene(args.path, args.frames, settings.blender)
    from serve.launcher import up

    return up(settings)


def _join(args: argparse.Namespace) -> int:
    import os
    import socket

    from serve.join import JoinRequest, join

    slots = args.slots if args.slots is not None else float(os.cpu_count() or 1)
    return join(JoinRequest(
        head=args.head, slots=slots, gpus=args.gpus,
        cpus=args.cpus, tags=args.tags, name=args.name or socket.gethostname(),
        token_file=args.token_file))


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
