"""The package's shape, checked: no import cycles (module-level or inside functions), modules of a readable size,
test doubles only under ``ragline.testing`` and never imported by production code, no reaching around a seam."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ragline"
MAX_LINES = 450


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ragline module ``name`` imports, anywhere in the file (functions included, TYPE_CHECKING excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ragline"):
            base = node.module
            for alias in node.names:  # ``from ragline.x import y`` may import the module ragline.x.y
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ragline"))
    found.discard(name)
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, set(known)) for name, path in known.items()}


def test_no_import_cycles() -> None:
    edges = graph()
    # a package's __init__ importing its own submodules is how packages expose names, not a cycle of meaning
    edges = {m: {d for d in deps if not (d.startswith(m + ".") and m != "ragline")} for m, deps in edges.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycles.append([*trail[trail.index(dep):], dep] if dep in trail else [node, dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_modules_stay_readable() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_test_doubles_live_in_the_testing_package_and_production_never_imports_them() -> None:
    edges = graph()
    production = {m for m in edges if not m.startswith("ragline.testing")}
    leaks = {m: sorted(d for d in edges[m] if d.startswith("ragline.testing")) for m in production}
    assert {m: d for m, d in leaks.items() if d} == {}
    fakes = [name for name, path in modules().items()
             if "class Fake" in path.read_text() and not name.startswith("ragline.testing")]
    assert fakes == []


def test_no_reaching_around_a_seam() -> None:
    """``hasattr`` nowhere; ``getattr`` only on library objects inside providers (and the composition root)."""
    offenders = []
    for name, path in modules().items():
        text = path.read_text()
        if "hasattr(" in text:
            offenders.append(f"{name}: hasattr")
        outside = not name.startswith(("ragline.providers", "ragline.testing")) and name not in (
            "ragline", "ragline.compose", "ragline.interfaces.http.app")  # the last reads starlette's route
        if outside and "getattr(" in text:
            offenders.append(f"{name}: getattr")
    assert offenders == []
