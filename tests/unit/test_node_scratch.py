"""A node's scratch folder: held while its agent lives; what gone nodes left is removed,
their input cache kept for the new one (pipelines/farm/node/scratch.py)."""

from __future__ import annotations

import subprocess
import sys

from pipelines.farm.node.scratch import Scratch

HOLD = ("import sys; from pathlib import Path; from pipelines.farm.node.scratch import Scratch;"
        "Scratch(Path(sys.argv[1]), sys.argv[2]).take(); print('held', flush=True);"
        "sys.stdin.read()")


def test_a_gone_node_s_folder_is_removed_and_its_cache_adopted(tmp_path):
    gone = tmp_path / "old-node"
    (gone / "cache").mkdir(parents=True)
    (gone / "cache" / "ab12").write_bytes(b"scene")
    (gone / "task-1-1").mkdir()
    (tmp_path / "older-node" / "cache").mkdir(parents=True)  # a second cache: dropped
    path = Scratch(tmp_path, "new-node").take()
    assert path == tmp_path / "new-node"
    assert (path / "cache" / "ab12").read_bytes() == b"scene"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["new-node"]


def test_a_live_agent_s_folder_is_left_alone(tmp_path):
    # Another process, as another node's agent on this machine is.
    live = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "live-node"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "held"
        (tmp_path / "live-node" / "cache").mkdir()
        Scratch(tmp_path, "new-node").take()
        assert (tmp_path / "live-node" / "cache").is_dir()
        assert not (tmp_path / "new-node" / "cache").exists()
    finally:
        live.communicate("")
    # Its agent gone, the next node to start tidies it.
    Scratch(tmp_path, "third-node").take()
    assert not (tmp_path / "live-node").exists()


def test_a_link_under_the_root_is_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "cache").mkdir(parents=True)
    (elsewhere / "cache" / "ab12").write_bytes(b"planted")
    root = tmp_path / "root"
    root.mkdir()
    (root / "planted-node").symlink_to(elsewhere)
    path = Scratch(root, "new-node").take()
    assert not (path / "cache").exists()  # nothing adopted from it
    assert sorted(p.name for p in elsewhere.iterdir()) == ["cache"]  # nor a lock made there
