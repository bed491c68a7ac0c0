"""The house's layers: each module imports only its own layer and the layers below it,
the farm's rooms do not reach into each other, and no modules import each other in a loop.

The layers, from the ground up (docs/farm.md and the README's Layout describe them):
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"ray", "fastapi", "starlette"}
PACKAGES = ("config", "pipelines", "actors", "serve", "bench", "ops", "client/studio_farm")

# Lowest first. A module belongs to the longest prefix that names it; `pipelines` alone
# means its loose modules (errors, db, storage, ...): the ground every room stands on.
LAYERS: list[tuple[str, ...]] = [
    # The client library: installed alone on TDs' machines, so it imports nothing else here.
    ("studio_farm",),
    ("config",),
    ("pipelines",),
    ("pipelines.media",),
    ("pipelines.render",),
    ("pipelines.mail",),  # the outbox and its sender; what messages say is the sender's
    ("pipelines.identity",),
    ("pipelines.events",),
    ("pipelines.assets",),
    ("pipelines.review",),
    ("pipelines.farm",),  # what the rooms share: models, views, frames, protocol, store
    # The farm's rooms, one per place they run; side by side, none imports another.
    ("pipelines.farm.submit", "pipelines.farm.control", "pipelines.farm.node",
     "pipelines.farm.publish"),
    ("pipelines.analytics",),  # reads what the rooms above wrote
    ("actors",),
    ("serve",),
    ("bench", "ops"),
]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = parts[1:] if parts[0] == "client" else parts  # client/studio_farm: its own root
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module(path): path for package in PACKAGES
            for path in (ROOT / package).rglob("*.py")}


def test_the_client_library_imports_nothing_of_the_server():
    sources = _sources()
    server = [f"{module} -> {name}" for module, targets in _edges().items()
              if module.startswith("studio_farm") for name in targets
              if not name.startswith("studio_farm")]
    assert server == [] and "studio_farm.client" in sources


def _imports(path: Path) -> set[str]:
    """Every module it imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _place(module: str) -> tuple[int, str] | None:
    """(layer, room) of a module of this house; None for anything else."""
    best: tuple[int, str] | None = None
    for level, rooms in enumerate(LAYERS):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and (
                    best is None or len(room) > len(best[1])):
                best = (level, room)
    return best


def _edges() -> dict[str, set[str]]:
    sources = _sources()
    return {module: {name for name in _imports(path) if name in sources}
            for module, path in sources.items()}


def test_every_module_has_a_layer():
    assert [m for m in _sources() if _place(m) is None] == []


def test_no_import_runs_up_the_layers_or_across_the_farm_rooms():
    wrong = []
    for module, targets in _edges().items():
        level, room = _place(module)  # type: ignore[misc]
        for target in targets:
            their_level, their_room = _place(target)  # type: ignore[misc]
            if their_level > level or (their_level == level and their_room != room):
                wrong.append(f"{module} -> {target}")
    assert sorted(wrong) == []


def _loops(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_modules_import_each_other():
    assert _loops(_edges()) == []


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_loop_finder_finds_loops(edges, expected):
    assert _loops(edges) == expected


def test_the_layer_check_sees_an_import_up_and_one_across_rooms():
    assert _place("pipelines.events.log")[0] < _place("pipelines.review.service")[0]
    assert _place("pipelines.farm.node.agent")[1] != _place("pipelines.farm.control.x")[1]
    assert _place("pipelines.farm.protocol") == (10, "pipelines.farm")


def test_pipelines_import_neither_ray_nor_the_web_framework():
    offenders = {
        str(path.relative_to(ROOT)): sorted({n.split(".")[0] for n in _imports(path)}
                                            & FORBIDDEN)
        for path in (ROOT / "pipelines").rglob("*.py")
        if {n.split(".")[0] for n in _imports(path)} & FORBIDDEN
    }
    assert offenders == {}


def _imports_ray_serve(path: Path) -> bool:
    return any(name == "ray.serve" or name.startswith("ray.serve.")
               for name in _imports(path))


def test_only_deployments_imports_ray_serve():
    users = sorted(
        str(path.relative_to(ROOT))
        for folder in ("serve", "actors", "pipelines", "config")
        for path in (ROOT / folder).rglob("*.py")
        if _imports_ray_serve(path)
    )
    assert users == ["serve/deployments.py"]
