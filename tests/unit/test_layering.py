"""The domain stays importable without Ray or the web framework."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"ray", "fastapi", "starlette"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_pipelines_import_neither_ray_nor_the_web_framework():
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN)
        for path in (ROOT / "pipelines").rglob("*.py")
        if _imports(path) & FORBIDDEN
    }
    assert offenders == {}


def _imports_ray_serve(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(a.name.startswith("ray.serve") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module and (
            node.module.startswith("ray.serve")
            or (node.module == "ray" and any(a.name == "serve" for a in node.names))
        ):
            return True
    return False


def test_only_deployments_imports_ray_serve():
    users = sorted(
        str(path.relative_to(ROOT))
        for folder in ("serve", "actors", "pipelines", "config")
        for path in (ROOT / folder).rglob("*.py")
        if _imports_ray_serve(path)
    )
    assert users == ["serve/deployments.py"]
