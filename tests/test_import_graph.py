"""The package's import graph: no cycles between modules (imports inside functions count too), and the
library never imports train or the apps."""
from __future__ import annotations

import ast
from pathlib import Path

import bind

ROOT = Path(bind.__file__).parent
OUTSIDE_LIBRARY = ("bind.train", "bind.apps")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that can run: all of the tree but ``if TYPE_CHECKING:`` blocks (type hints only)."""
    nodes: list[ast.AST] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        nodes += [node, *runtime_nodes(node)]
    return nodes


def imported(path: Path) -> set[str]:
    """The bind modules ``path`` imports anywhere, in functions too (``from X import name`` counts X, and
    X.name when it is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    ancestors.add(name)  # a package loads before its modules; a script may import its own module by name
    return {m for m in found if m in MODULES and m not in ancestors}


MODULES = {module_name(p) for p in ROOT.rglob("*.py")}


def test_no_import_cycles() -> None:
    graph = {module_name(p): imported(p) for p in ROOT.rglob("*.py")}
    graph["bind"] = set()  # the package front door imports everything; nothing may need it at import time
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_library_never_imports_train_or_the_apps() -> None:
    for path in ROOT.rglob("*.py"):
        name = module_name(path)
        if name in ("bind", "bind.__main__") or name.startswith(OUTSIDE_LIBRARY):  # __main__: the CLI entry point
            continue
        bad = {m for m in imported(path) if m.startswith(OUTSIDE_LIBRARY)}
        assert not bad, f"{name} imports {sorted(bad)}"
