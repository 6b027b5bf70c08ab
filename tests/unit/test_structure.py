"""The package's shape: no import circles, no module reaching for a sibling's private names, modules
small enough to read, and every public name exported."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import osrerank

from ..conftest import REPO

PACKAGE = REPO / "osrerank"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported osrerank module, names taken from it) for each import in a module."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            if not target.startswith("osrerank"):
                continue
            names = [a.name for a in node.names]
            modules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            found += [(m, []) for m in modules]
            rest = [n for n in names if f"{target}.{n}" not in MODULES]
            if rest:
                found.append((target, rest))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("osrerank")]
    return found


GRAPH = {name: {m for m, _ in imports(name, path) if m != name} for name, path in MODULES.items()}


def test_no_import_circles():
    circles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_no_module_takes_a_private_name_from_another():
    taken = [
        f"{name} takes {', '.join(n for n in names if n.startswith('_'))} from {target}"
        for name, path in MODULES.items()
        for target, names in imports(name, path)
        if target != name and any(n.startswith("_") for n in names)
    ]
    assert taken == []


def test_no_module_over_the_size_limit():
    big = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def test_exported_names_are_the_public_api():
    """Like httpx's test_exported_members: what the package offers is exactly its __all__."""
    offered = {n for n in dir(osrerank) if not n.startswith("_") and not isinstance(getattr(osrerank, n), ModuleType)}
    assert set(osrerank.__all__) == offered
