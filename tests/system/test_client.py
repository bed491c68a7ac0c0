"""The client library as a TD has it (a clean virtualenv with the client alone) and the
`farm` CLI as a subprocess, against the `farm up` of the system tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.support.media import make_mp4, padded
from tests.support.render import probe
from tests.support.system import BIN, UV, user_env
from tests.system.test_first_run import PASSWORD, register

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def td_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the client installed, as `pip install ./client` does."""
    venv = tmp_path_factory.mktemp("td") / "venv"
    for argv in ([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)],
                 [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                  str(ROOT / "client")]):
        done = subprocess.run(argv, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return venv / "bin" / "python"


def run_script(python: Path, source: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    script = cwd / f"script_{uuid.uuid4().hex[:6]}.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run([str(python), str(script)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=user_env(**env))


async def a_studio(api, stack) -> dict[str, str]:
    slug = f"td-{uuid.uuid4().hex[:8]}"
    await register(api, slug, stack.mail_dir)
    return {"FARM_STUDIO": slug, "FARM_EMAIL": f"ada@{slug}.example", "FARM_PASSWORD": PASSWORD}


def test_the_client_installs_alone(td_python, tmp_path):
    found = run_script(td_python, """
        import importlib.util, json
        print(json.dumps([m for m in ("ray", "fastapi", "starlette", "pipelines", "serve",
                                      "config", "studio_farm") if importlib.util.find_spec(m)]))
    """, tmp_path)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == ["studio_farm"]


LIBRARY = """
    import asyncio, hashlib, json, os, sys
    from studio_farm import AsyncFarm, Farm, LayeredJob, depends_on
    from studio_farm.jobs import Follower

    URL, STUDIO = os.environ["FARM_URL"], os.environ["FARM_STUDIO"]
    EMAIL, PASSWORD = os.environ["FARM_EMAIL"], os.environ["FARM_PASSWORD"]
    WRITE = ("import sys; open('%s/%s_%d.txt' % (sys.argv[1], sys.argv[2], int(sys.argv[3])),"
             " 'w').write('x')")

    async def main():
        async with await AsyncFarm.login(URL, STUDIO, EMAIL, PASSWORD) as farm:
            asset = await farm.create_asset("plate", "plate")
            version, sent = await farm.upload(os.environ["CLIP"], asset)
            job = LayeredJob("sh010 comp")
            render = job.layer("render", ["python3", "-c", WRITE, "{output}", "render",
                                          "{frame}"], frames="1-6", chunk_size=2)
            comp = job.layer("comp", ["python3", "-c", WRITE, "{output}", "comp", "{frame}"],
                             frames="1-6", depends_on=[depends_on(render, per_frame=True)])
            job.layer("dailies", ["python3", "-c", WRITE, "{output}", "dailies", "1"],
                      depends_on=[comp])
            first = await farm.submit(job)
            second = await farm.submit({"kind": "command", "command": ["true"]}, after=[first])
            seen = []
            follower = Follower(farm.session, first.id)

            async def on_event(event):
                seen.append(event["seq"])
                if len(seen) == 1:  # the socket drops; events go on while it is away
                    await follower.drop()
                    await asyncio.sleep(1.5)

            follower.on_event = on_event
            done = await follower.run(timeout_s=180)
            after = await farm.wait(second, timeout_s=120)
            outputs = await farm.download_outputs(first, "outputs")
            await farm.download(version, "copy.mp4")
            same = hashlib.sha256(open("copy.mp4", "rb").read()).hexdigest() == version.sha256
            print(json.dumps({
                "parts": sent.parts_total, "status": done.status, "second": after.status,
                "layers": [(layer.name, layer.task_count) for layer in done.layers],
                "seqs": seen, "reconnects": follower.reconnects,
                "replayed": follower.replayed, "same": same,
                "outputs": sorted(p.name for p in outputs)}))

    asyncio.run(main())
    with Farm.login(URL, STUDIO, EMAIL, PASSWORD) as farm:  # the blocking client too
        assert farm.me().user["email"] == EMAIL
        assert [job.name for job in farm.jobs()][:2] == ["job", "sh010 comp"]
"""


async def test_a_script_uploads_submits_layers_and_follows_through_a_dropped_socket(
        api, stack, td_python, tmp_path):
    env = await a_studio(api, stack) | {"FARM_URL": stack.api}
    clip = make_mp4(tmp_path / "plate.mp4")
    done = run_script(td_python, LIBRARY, tmp_path, CLIP=str(clip), **env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["status"], result["second"], result["same"]) == ("completed", "completed",
                                                                    True)
    assert result["layers"] == [["render", 3], ["comp", 6], ["dailies", 1]]
    assert result["reconnects"] >= 1 and result["replayed"] >= 1  # replayed after the drop
    assert result["seqs"] == sorted(set(result["seqs"]))  # in order, none twice
    assert result["outputs"] == sorted([f"render_{f}.txt" for f in range(1, 7)] +
                                       [f"comp_{f}.txt" for f in range(1, 7)] +
                                       ["dailies_1.txt"])


KILLED_HALFWAY = """
    import asyncio, os, signal
    from studio_farm import AsyncFarm
    from studio_farm.transfer import Transfers

    put, sent = Transfers._put, []

    async def put_then_die(self, url, path, offset, size):
        await put(self, url, path, offset, size)
        sent.append(size)
        if len(sent) == 2:  # two parts are stored: the process is killed
            os.kill(os.getpid(), signal.SIGKILL)

    Transfers._put = put_then_die

    async def main():
        farm = AsyncFarm(os.environ["FARM_URL"], parallel=1)
        await farm.session.login(os.environ["FARM_STUDIO"], os.environ["FARM_EMAIL"],
                                 os.environ["FARM_PASSWORD"])
        asset = await farm.create_asset("big plate", "plate")
        print(asset.id, flush=True)
        await farm.upload(os.environ["CLIP"], asset)

    asyncio.run(main())
"""


def farm_cli(python: Path, *args: str, home: Path, stdin: str | None = None,
             **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python.parent / "farm"), *args], capture_output=True, text=True,
                          input=stdin, timeout=600, cwd=home,
                          env=user_env(XDG_CONFIG_HOME=str(home / "config"), **env))


async def test_an_upload_killed_halfway_resumes_with_the_missing_parts_only(
        api, stack, td_python, tmp_path):
    env = await a_studio(api, stack) | {"FARM_URL": stack.api}
    big = tmp_path / "big.mp4"
    big.write_bytes(padded(make_mp4(tmp_path / "head.mp4").read_bytes(), 70 * 2**20))  # 5 parts
    killed = run_script(td_python, KILLED_HALFWAY, tmp_path, CLIP=str(big), **env)
    assert killed.returncode == -9, killed.stderr[-2000:]
    asset_id = killed.stdout.split()[0]
    state = json.loads(next(tmp_path.glob(".big.mp4.*.farm-upload.json")).read_text())
    login = farm_cli(td_python, "login", stack.api, "--studio", env["FARM_STUDIO"],
                     "--email", env["FARM_EMAIL"], "--password-stdin", home=tmp_path,
                     stdin=env["FARM_PASSWORD"] + "\n")
    assert login.returncode == 0, login.stderr
    stored = await api.get(f"/api/v1/uploads/{state['upload_id']}", headers={
        "Authorization": "Bearer " + json.loads(
            (tmp_path / "config" / "studio-farm" / "credentials.json").read_text())["access"]})
    assert [p["part"] for p in stored.json()["parts"]] == [1, 2]
    resumed = farm_cli(td_python, "upload", str(big), "--asset", asset_id, "--json",
                       home=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert (report["resumed"], report["parts_total"], report["parts_sent"]) == (True, 5, 3)
    assert report["version"]["number"] == 1 and report["version"]["size"] == big.stat().st_size


async def test_the_cli_renders_a_scene_and_says_what_went_wrong(api, stack, td_python, tmp_path):
    env = await a_studio(api, stack)
    cli = lambda *args, **kw: farm_cli(td_python, *args, home=tmp_path, **kw)  # noqa: E731
    assert cli("whoami").returncode == 2  # not logged in: a usage error, said plainly
    login = cli("login", stack.api, "--studio", env["FARM_STUDIO"], "--email",
                env["FARM_EMAIL"], "--password-stdin", stdin=env["FARM_PASSWORD"] + "\n")
    assert login.returncode == 0, login.stderr
    credentials = tmp_path / "config" / "studio-farm" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert json.loads(cli("whoami", "--json").stdout)["user"]["email"] == env["FARM_EMAIL"]

    scene = tmp_path / "shot.blend"
    made = make_scene(scene)
    assert made.returncode == 0, made.stderr
    uploaded = cli("upload", str(scene), "--new-asset", "shot", "--kind", "environment",
                   "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    scene_id = json.loads(uploaded.stdout)["version"]["asset_id"]
    target = json.loads(cli("assets", "create", "shot render", "--kind", "render",
                            "--json").stdout)["id"]
    render = cli("submit", "render", "--scene", f"{scene_id}:1", "--target", target,
                 "--frames", "1-6", "--chunk-size", "2", "--samples", "1", "--wait", "--json")
    assert render.returncode == 0, render.stdout + render.stderr
    assert json.loads(render.stdout)["status"] == "completed"
    movie = tmp_path / "movie.mp4"
    fetched = cli("download", target, "1", str(movie), "--json")
    assert fetched.returncode == 0, fetched.stderr
    (video,) = [s for s in probe(movie)["streams"] if s["codec_type"] == "video"]
    assert video["codec_name"] == "h264" and int(video["nb_read_packets"]) == 6

    listed = json.loads(cli("jobs", "ls", "--json").stdout)
    assert listed[0]["kind"] == "render" and listed[0]["status"] == "completed"
    shown = json.loads(cli("jobs", "show", listed[0]["id"], "--json").stdout)
    first_task = shown["tasks"][0]["id"]
    log = cli("tasks", "log", first_task)
    assert log.returncode == 0 and log.stdout.startswith(f"# task {first_task} attempt 1"), \
        log.stdout + log.stderr
    assert log.stdout.splitlines()[1].startswith("$ ")
    not_running = cli("tasks", "kill", first_task)
    assert not_running.returncode == 1 and "task_not_running" in not_running.stderr
    nowhere = tmp_path / "nowhere.json"
    nowhere.write_text(json.dumps({"kind": "command", "command": ["true"],
                                   "requirements": {"tags": ["no-such-node"]}}))
    queued = json.loads(cli("submit", str(nowhere), "--json").stdout)
    for action, status in (("pause", "paused"), ("resume", "queued"), ("cancel", "cancelled")):
        steered = cli("jobs", action, queued["id"], "--json")
        assert json.loads(steered.stdout)["status"] == status, steered.stderr
    other = json.loads(cli("submit", str(nowhere), "--json").stdout)
    task_id = f"{other['id']}-00000"
    assert json.loads(cli("tasks", "skip", task_id, "--json").stdout)["state"] == "skipped"
    assert json.loads(cli("tasks", "retry", task_id, "--json").stdout)["state"] in (
        "waiting", "ready")
    again = cli("jobs", "retry-frames", other["id"], "1")  # it has not ended again yet
    assert again.returncode == 1 and "nothing_to_retry" in again.stderr, again.stderr
    assert json.loads(cli("jobs", "cancel", other["id"], "--json").stdout)["status"] == \
        "cancelled"
    node = json.loads(cli("nodes", "--json").stdout)[0]
    assert node["slots"] >= 1 and node["state"] == "open"
    labelled = json.loads(cli("nodes", "label", node["node_id"], "fast-disk", "--json").stdout)
    assert labelled["labels"] == ["fast-disk"]
    locked = json.loads(cli("nodes", "lock", node["node_id"], "--reason", "new disk",
                            "--json").stdout)
    assert (locked["state"], locked["reason"]) == ("locked", "new disk")
    unlocked = json.loads(cli("nodes", "unlock", node["node_id"], "--json").stdout)
    assert unlocked["state"] == "open"
    refused = cli("nodes", "label", node["node_id"], "Not A Tag")
    assert refused.returncode == 1 and "invalid_label" in refused.stderr
    assert json.loads(cli("nodes", "label", node["node_id"], "--json").stdout)["labels"] == []
    assert "encode" in [t["name"] for t in json.loads(cli("job-types", "--json").stdout)]

    bad = cli("submit", "render", "--scene", "x:1", "--target", "y", "--frames", "10-1")
    assert bad.returncode == 2 and "--frames" in bad.stderr
    missing = cli("jobs", "show", "0" * 32)
    assert missing.returncode == 1
    assert "job_not_found" in missing.stderr and "request" in missing.stderr
    failing = cli("submit", "command", "--wait", "--", "false")
    assert failing.returncode == 3, failing.stderr


async def test_the_cli_tells_a_new_user_what_went_wrong_and_cleans_up(api, stack, td_python,
                                                                     tmp_path):
    """A first walkthrough: the address the banner shows, a field out of range, a file that
    is no media, a job watched through a pipe until it is cancelled."""
    env = await a_studio(api, stack)
    cli = lambda *args, **kw: farm_cli(td_python, *args, home=tmp_path, **kw)  # noqa: E731
    shown = re.search(r"API:\s+(\S+)", stack.launched.output())
    assert shown and shown.group(1).endswith("/api/v1")
    login = cli("login", shown.group(1), "--studio", env["FARM_STUDIO"], "--email",
                env["FARM_EMAIL"], "--password-stdin", stdin=env["FARM_PASSWORD"] + "\n")
    assert login.returncode == 0, login.stderr
    credentials = tmp_path / "config" / "studio-farm" / "credentials.json"
    assert json.loads(credentials.read_text())["url"] == stack.api

    bad = cli("submit", "command", "--chunk-size", "0", "--", "true")
    assert bad.returncode == 1
    assert "\n  chunk_size: Input should be greater than or equal to 1\n" in bad.stderr

    (tmp_path / "notes.txt").write_text("not a plate\n")
    refused = cli("upload", "notes.txt", "--new-asset", "notes", "--kind", "plate")
    assert refused.returncode == 1 and "file_type_not_allowed" in refused.stderr
    assert json.loads(cli("assets", "ls", "--json").stdout) == []

    # Tasks that end one after another, so progress comes while it is watched.
    job = json.loads(cli("submit", "command", "--frames", "1-40", "--json", "--",
                         "sleep", "3").stdout)
    code, first, err = await asyncio.to_thread(watch_and_cancel, td_python, tmp_path, job["id"])
    assert first.startswith(f"job {job['id'][:8]}  command "), first
    assert code == 3, err
    assert re.search(r"cancelled: no reason given \(cancelled \d+(, succeeded \d+)?\)\n$",
                     err), err


def watch_and_cancel(python: Path, home: Path, job_id: str) -> tuple[int, str, str]:
    """`farm jobs watch` into a pipe: its first line (read while the job runs), then the job
    cancelled; its exit code, that line and its stderr."""
    watch = subprocess.Popen([str(python.parent / "farm"), "jobs", "watch", job_id],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=home, env=user_env(XDG_CONFIG_HOME=str(home / "config")))
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()
        cancel = farm_cli(python, "jobs", "cancel", job_id, home=home)
        assert cancel.returncode == 0, cancel.stderr
        _, err = watch.communicate(timeout=120)
    finally:
        watch.kill()
    return watch.returncode, first, err


def make_scene(path: Path) -> subprocess.CompletedProcess:
    """`farm sample-scene` of the backend's own CLI (it needs Blender's Python)."""
    return subprocess.run([str(BIN / "farm"), "sample-scene", str(path), "--frames", "6"],
                          capture_output=True, text=True, timeout=300, env=user_env())


def test_every_command_has_help(td_python, tmp_path):
    for command in ([], ["login"], ["upload"], ["submit"], ["jobs", "wait"], ["tasks", "log"]):
        shown = farm_cli(td_python, *command, "--help", home=tmp_path)
        assert shown.returncode == 0 and "usage: farm" in shown.stdout, command
    assert os.access(td_python.parent / "farm", os.X_OK)
