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


# ---------------------------------------------------------------- who reads OSRERANK_* variables
#: Where settings and process variables are read: the settings sources and the process-variable table (config/),
#: and the commands that resolve them (cli/). Every other module asks osrerank.config.environment.get.
ENV_READERS = ("osrerank.config", "osrerank.cli")
#: Shipped as osrerank.torchserve (deploy/torchserve/handler.py): the same rule.
SHIPPED = {"osrerank.torchserve": REPO / "deploy" / "torchserve" / "handler.py"}


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments (a prefix kept in a constant is still the prefix)."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return found


def _names_prefix(node: ast.AST, constants: dict[str, str]) -> bool:
    """Whether an expression spells an OSRERANK_ name: a string, f-string part or module constant holding it."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str) and "OSRERANK_" in inner.value:
            return True
        if isinstance(inner, ast.Name) and "OSRERANK_" in constants.get(inner.id, ""):
            return True
    return False


def direct_reads(source: str) -> list[str]:
    """Each place ``source`` reads an OSRERANK_ variable from the process environment itself: ``os.environ[...]``,
    ``os.environ.get/pop/setdefault(...)``, ``os.getenv(...)``, ``... in os.environ`` and a scan of
    ``os.environ`` filtered by the prefix (also through ``from os import environ, getenv`` and an alias of
    ``os.environ``), as "line N: code"."""
    tree = ast.parse(source)
    constants = _constants(tree)
    environ_names = {"environ"}
    for node in ast.walk(tree):  # env = os.environ
        if isinstance(node, ast.Assign) and _is_environ(node.value, environ_names):
            environ_names |= {t.id for t in node.targets if isinstance(t, ast.Name)}

    reads = []
    for node in ast.walk(tree):
        spelled: list[ast.AST] = []
        if isinstance(node, ast.Call):
            func = node.func
            getenv = (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and func.id == "getenv"
            )
            environ_method = isinstance(func, ast.Attribute) and _is_environ(func.value, environ_names)
            if getenv or environ_method:
                spelled = [*node.args, *(k.value for k in node.keywords)]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value, environ_names):
            spelled = [node.slice]
        elif isinstance(node, ast.Compare) and any(_is_environ(c, environ_names) for c in node.comparators):
            spelled = [node.left]
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) and any(
            _mentions_environ(g.iter, environ_names) for g in node.generators
        ):
            spelled = [c for g in node.generators for c in g.ifs]
        if any(_names_prefix(s, constants) for s in spelled):
            reads.append(f"line {node.lineno}: {ast.unparse(node)}")
    return reads


def _is_environ(node: ast.AST, names: set[str]) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id in names
    )


def _mentions_environ(node: ast.AST, names: set[str]) -> bool:
    return any(_is_environ(inner, names) for inner in ast.walk(node))


def test_the_direct_read_finder_finds_each_form():
    """The finder itself, on each way of reading a variable (so the next test cannot pass by finding nothing)."""
    bad = [
        'os.environ.get("OSRERANK_CACHE")',
        'os.environ["OSRERANK_CACHE"]',
        'os.getenv("OSRERANK_CACHE", "x")',
        'getenv(f"OSRERANK_{name}")',
        '"OSRERANK_CACHE" in os.environ',
        'environ.pop("OSRERANK_X", None)',
        'PREFIX = "OSRERANK_"\nos.environ.get(PREFIX + "CACHE")',
        'env = os.environ\nenv.get("OSRERANK_CACHE")',
        '{k: v for k, v in os.environ.items() if k.startswith("OSRERANK_")}',
    ]
    for source in bad:
        assert direct_reads("import os\nfrom os import environ, getenv\n" + source), source
    fine = [
        'get("OSRERANK_CACHE")',
        'os.environ.get("AWS_REGION")',
        'env = {**os.environ, "OSRERANK_BEARER_TOKEN": token}',  # handing a child process its variables
        'message = "set OSRERANK_BEARER_TOKEN"',
    ]
    for source in fine:
        assert direct_reads("import os\n" + source) == [], source


def test_only_config_and_cli_read_osrerank_variables_directly():
    """The process variables go through osrerank.config.environment.get (which knows every one of them), so an
    unknown OSRERANK_ variable can be refused as a mistake; settings variables through the settings sources."""
    checked = {name: path for name, path in MODULES.items() if not name.startswith(ENV_READERS)} | SHIPPED
    assert "osrerank.paths" in checked and "osrerank.config.sources" not in checked
    found = {
        f"{name} ({path.relative_to(REPO)}) {read}"
        for name, path in checked.items()
        for read in direct_reads(path.read_text())
    }
    assert found == set()


def test_every_process_variable_asked_for_is_listed():
    """``environment.get("OSRERANK_X")`` raises for an unlisted name only when it runs: here every call site is
    checked, run or not."""
    from osrerank.config.environment import VARIABLES

    asked = {}
    for name, path in {**MODULES, **SHIPPED}.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name | ast.Attribute)
                and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "get"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("OSRERANK_")
            ):
                asked[node.args[0].value] = f"{name}:{node.lineno}"
    assert {"OSRERANK_CACHE", "OSRERANK_BEARER_TOKEN", "OSRERANK_ORT_THREADS"} <= set(asked)
    assert {v: where for v, where in asked.items() if v not in VARIABLES} == {}


def test_every_package_ships_in_the_wheel():
    """pyproject lists its packages by name (the data folders are mapped in beside them): a subpackage left off
    the list works in an editable install and is missing from a wheel, so every folder of the package is named."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    root = Path(osrerank.__file__).parent
    folders = {".".join(("osrerank", *p.parent.relative_to(root).parts)).rstrip(".") for p in root.rglob("__init__.py")}
    assert folders - listed == set()
