"""`farm`'s commands and options (what `farm --help` and each command's `--help` say)."""

from __future__ import annotations

import argparse
from typing import Any

STEERS = ("pause", "resume", "cancel", "retry")


def parser() -> tuple[argparse.ArgumentParser, Any]:
    top = argparse.ArgumentParser(
        prog="farm", description="Studio Farm from the shell: log in, upload, submit and "
        "follow jobs. Exit codes: 0 ok, 1 API error, 2 usage, 3 job failed, 130 interrupted.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the API (default: FARM_URL, or where you logged in)")
    common.add_argument("--api-key", default=None,
                        help="an API key (default: FARM_API_KEY, or your login)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text, parents=[common],
                                   **kwargs)

    login = add("login", "log in; the tokens are kept in your config dir (mode 0600)")
    login.add_argument("url_arg", metavar="URL", help="the server, e.g. http://farm:8000 "
                       "(its API address, .../api/v1, too; 127.0.0.1:8000 needs no http://)")
    login.add_argument("--studio", required=True, help="the studio's slug")
    login.add_argument("--email", required=True)
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password from stdin (default: ask)")
    add("whoami", "who you are logged in as")
    assets = add("assets", "assets of your studio").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    ls = assets.add_parser("ls", help="list assets", parents=[common])
    ls.add_argument("--kind")
    ls.add_argument("--status")
    assets.add_parser("show", help="one asset and its versions",
                      parents=[common]).add_argument("asset_id")
    create = assets.add_parser("create", help="a new asset", parents=[common])
    create.add_argument("name")
    create.add_argument("--kind", default="other", help="e.g. render (a render job's target)")
    upload = add("upload", "upload a file as a new version (resumes an interrupted upload)")
    upload.add_argument("path")
    target = upload.add_mutually_exclusive_group(required=True)
    target.add_argument("--asset", help="the asset's id")
    target.add_argument("--new-asset", metavar="NAME", help="create an asset of this name")
    upload.add_argument("--kind", default="other", help="with --new-asset: its kind")
    upload.add_argument("--parallel", type=int, default=4, help="parts sent at once")
    download = add("download", "download a version (resumes an interrupted download)")
    download.add_argument("asset_id")
    download.add_argument("version", type=int)
    download.add_argument("path", nargs="?", help="default: the version's file name")
    submit = add("submit", "submit a job: render, command, or a JSON file as POST /jobs takes",
                 usage="farm submit render|command|FILE.json [options] [-- COMMAND ARG...]")
    submit.add_argument("what", metavar="render|command|FILE.json",
                        help="command: its argument list goes last, after --")
    submit.add_argument("--name", default="job")
    submit.add_argument("--frames", help="e.g. 1001-1100 or 1-100x2")
    submit.add_argument("--chunk-size", type=int, default=1)
    submit.add_argument("--priority", type=int, default=None)
    submit.add_argument("--scene", metavar="ASSET:VERSION", help="render: the scene version")
    submit.add_argument("--target", metavar="ASSET", help="render: the render asset")
    submit.add_argument("--samples", type=int, default=None, help="render: Cycles samples")
    submit.add_argument("--after", action="append", default=[], metavar="JOB",
                        help="wait for this job first (repeatable)")
    submit.add_argument("--wait", action="store_true", help="then wait for it (exit 3 if "
                        "it fails)")
    jobs = add("jobs", "jobs of your studio").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    jls = jobs.add_parser("ls", help="list jobs", parents=[common])
    jls.add_argument("--status")
    jls.add_argument("--limit", type=int, default=20)
    for action, text in (("show", "one job and its layers"),
                         ("watch", "follow a job live until it ends; exit 3 unless it "
                          "completed"),
                         ("wait", "wait for a job; exit 3 unless it completed"),
                         *((a, f"{a} a job") for a in STEERS)):
        jobs.add_parser(action, help=text, parents=[common]).add_argument("job_id")
    frames = jobs.add_parser("retry-frames", help="run again the ended tasks of some frames",
                             parents=[common])
    frames.add_argument("job_id")
    frames.add_argument("frames", help="e.g. 1001-1010 or 5,7,9")
    tasks = add("tasks", "one task of a job").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    tasks.add_parser("kill", help="stop a running task",
                     parents=[common]).add_argument("task_id")
    tasks.add_parser("retry", help="run an ended task again",
                     parents=[common]).add_argument("task_id")
    tasks.add_parser("skip", help="skip a task that has not run (it counts as done)",
                     parents=[common]).add_argument("task_id")
    task_log = tasks.add_parser("log", help="a task's log so far (--follow: as it grows, "
                                "until the attempt ends)", parents=[common])
    task_log.add_argument("task_id")
    task_log.add_argument("--follow", "-f", action="store_true")
    task_log.add_argument("--attempt", type=int, help="an earlier attempt's")
    nodes = add("nodes", "the farm's nodes: list them (the default), take one out of "
                "service and back, label it").add_subparsers(dest="action", metavar="ACTION")
    nodes.add_parser("ls", help="every node: state, slots, circuit, recent failures",
                     parents=[common])
    nodes.add_parser("show", help="one node", parents=[common]).add_argument("node_id")
    for action, text in (("lock", "nothing new is leased to it; running tasks finish"),
                         ("drain", "lock, then tell the studio once it runs nothing"),
                         ("unlock", "back in service")):
        mode = nodes.add_parser(action, help=text, parents=[common])
        mode.add_argument("node_id")
        if action != "unlock":
            mode.add_argument("--reason", help="shown in the node list")
    label = nodes.add_parser("label", help="set its labels (tags jobs may require); none "
                             "clears them", parents=[common])
    label.add_argument("node_id")
    label.add_argument("labels", nargs="*")
    add("job-types", "the job types you may submit, with their settings")
    return top, commands
