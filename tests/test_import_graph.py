"""simstudy's import graph, read from the source with ``ast`` (nothing is imported).

Two rules (issue 15's invariant "no import cycle among simstudy's modules and no function-level
imports beyond documented lazy loading of heavy optional dependencies"):

* **No cycle.** The graph of imports between simstudy's own modules is acyclic: those run when
  a module is loaded, and also counting those inside functions and the modules simstudy loads
  by name (a string that is exactly a module's dotted name, such as the values of
  ``simstudy.studies.KINDS``, counts as an import by the module holding it). Every
  module can be read top to bottom with what it imports complete, and no import is moved into
  a function, or behind a name, to hide a circle.
* **Imports at the top.** An import inside a function (or a lambda) is allowed only of a
  module in ``LAZY_ALLOWED``: a heavy third-party dependency that only some commands need,
  loaded on first use so that ``python -m simstudy --help`` and a bad-config exit stay fast.
  simstudy's own modules are never in it: an intra-package import inside a function is either
  a hidden cycle or a dependency the module should state at its top.

Imports under ``if TYPE_CHECKING:`` are never run and are left out of both rules. The test
walks whatever modules the package holds, so modules may appear, move or go.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = "simstudy"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE
BY_NAME = re.compile(r"([A-Za-z_][\w.]*)(?::[A-Za-z_][\w.]*)?")

LAZY_ALLOWED: dict[str, str] = {
    # ~0.8 s of the start-up (scipy.stats._stats_py and the distributions), measured with
    # python -X importtime; simstudy.engine's one user (relative_error's normal quantile) runs
    # only after a cell's replications, while engine itself is loaded by every command
    "scipy.stats": "imported by engine.relative_error alone, after a cell's replications; "
    "loading it with engine would add about 0.8 s to every command's start",
    # imbalanced-learn pulls in scikit-learn and scipy.stats: about a second; the imblearn
    # generator is one option of one config group, but simstudy.generators (which lists it)
    # is loaded by every command
    "imblearn": "only the imblearn generator and study 7 sample with it; loading it with "
    "simstudy.generators would add about a second to every command's start",
    # seaborn imports scipy.stats at its top (about half a second); only the sweep figures use it,
    # after a multirun, while simstudy.plotting is loaded by every command through the aggregate
    "seaborn": "only the sweep figures (simstudy.plotting) draw with it, at a sweep's end; loaded "
    "with plotting it would bring scipy.stats, about half a second, into every command's start",
    # scikit-learn's BaseEstimator and clone, for the imblearn adapter's reseeding of an
    # estimator option: the same reason as imbalanced-learn
    "sklearn": "only the imblearn generator's adapter uses it, to reseed an estimator option; "
    "loading it with simstudy.generators would add most of a second to every start",
}
"""Module -> why simstudy may import it inside a function (see the module docstring). A key
covers the module and its submodules; keys are third-party modules, never simstudy's own."""


# --------------------------------------------------------------------------------------------
# reading the package


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    """simstudy's modules (name -> file), every .py file under the package directory."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


class Import:
    """One import statement (or one module named by a string): where it is, the modules it
    names, whether it runs inside a function, and whether it is a load by name."""

    def __init__(self, module: str, node: ast.AST, targets: list[str], lazy: bool, by_name: bool = False):
        self.module, self.line, self.targets = module, node.lineno, targets
        self.lazy, self.by_name = lazy, by_name

    def __repr__(self) -> str:
        where = "by name" if self.by_name else "in a function" if self.lazy else "at module level"
        return f"{self.module}:{self.line} imports {', '.join(self.targets)} {where}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, is_package: bool, node, modules) -> list[str]:
    """The modules an import statement loads: ``import a.b`` names a.b; ``from a import b``
    names a.b when that is a module of the package, else a."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    source = _absolute(module, is_package, node)
    out = []
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        out.append(sub if sub in modules else source)
    return list(dict.fromkeys(out))


def imports_of(module: str, path: Path, modules) -> list[Import]:
    """Every import statement of a module, with whether it runs inside a function; imports
    under ``if TYPE_CHECKING:`` are skipped."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_stmt(stmt, lazy)
                continue
            visit_stmt(child, lazy)

    def visit_stmt(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(Import(module, node, _targets(module, is_package, node, modules), lazy))
            return
        if _is_docstring(node):
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = BY_NAME.fullmatch(node.value)  # "package.module" or "package.module:attribute"
            if named and named[1] in modules and named[1] != PACKAGE:
                found.append(Import(module, node, [named[1]], lazy=True, by_name=True))
            return
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        visit(node, inner)

    visit(tree, False)
    return found


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def loaded_modules(target: str, importer: str, modules) -> list[str]:
    """The package modules that importing ``target`` from ``importer`` runs: the target and
    its parent packages, except the importer's own parents (loaded before the importer)."""
    parts = target.split(".")
    chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    own = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 2)}
    return [m for m in chain if m in modules and (m == target or m not in own) and m != importer]


def all_imports() -> tuple[dict[str, Path], list[Import]]:
    modules = package_modules()
    found = []
    for name, path in modules.items():
        found.extend(imports_of(name, path, modules))
    return modules, found


def graph(found: list[Import], modules, *, lazy: bool) -> dict[str, set[str]]:
    """Module -> the package modules it loads; with ``lazy``, function-level imports count."""
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for imp in found:
        if imp.lazy and not lazy:
            continue
        for target in imp.targets:
            edges[imp.module].update(loaded_modules(target, imp.module, modules))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or with a self-loop), each
    as one cycle through it (Tarjan's algorithm, then a path back to its first module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges[v]:
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return [_one_cycle(component, edges) for component in components]


def _one_cycle(component: list[str], edges) -> list[str]:
    """A cycle through the component's first module (breadth-first, so the shortest)."""
    inside, start = set(component), component[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & inside):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    return component  # unreachable for a strongly connected component


def _describe(found_cycles) -> str:
    return "; ".join(" -> ".join(c) for c in found_cycles)


# --------------------------------------------------------------------------------------------
# the rules


def test_the_package_is_found():
    modules = package_modules()
    assert PACKAGE in modules and f"{PACKAGE}.app" in modules, sorted(modules)


def test_no_cycle_among_module_level_imports():
    modules, found = all_imports()
    assert not cycles(graph(found, modules, lazy=False)), _describe(cycles(graph(found, modules, lazy=False)))


def test_no_cycle_with_function_level_imports_and_loads_by_name():
    modules, found = all_imports()
    assert not cycles(graph(found, modules, lazy=True)), _describe(cycles(graph(found, modules, lazy=True)))


def _allowed_by(target: str) -> str | None:
    """The LAZY_ALLOWED key that covers ``target``, if any."""
    return next((key for key in LAZY_ALLOWED if target == key or target.startswith(key + ".")), None)


def test_function_level_imports_only_of_allowed_heavy_dependencies():
    _, found = all_imports()
    offending = [imp for imp in found if imp.lazy and not imp.by_name and not all(_allowed_by(t) for t in imp.targets)]
    assert not offending, "\n".join(map(repr, offending))


def test_every_allowed_lazy_dependency_is_documented_and_used():
    """An entry of the allow-list is third-party, states its reason and is still needed (a
    stale entry would let a new function-level import in unexamined)."""
    _, found = all_imports()
    used = {_allowed_by(t) for imp in found if imp.lazy and not imp.by_name for t in imp.targets}
    for name, reason in LAZY_ALLOWED.items():
        assert name.split(".")[0] != PACKAGE, f"{name}: simstudy's own modules are imported at the top"
        assert len(reason.split()) >= 8, f"{name}: say why it is imported lazily"
        assert name in used, f"{name} is allowed to load lazily but no function imports it; remove it"


# --------------------------------------------------------------------------------------------
# the walker itself, on a package made for it


@pytest.fixture
def toy(tmp_path, monkeypatch):
    root = tmp_path / PACKAGE
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "import jax\n",
        "a.py": (
            '"""simstudy.c is named here."""\nfrom simstudy import b\nfrom typing import TYPE_CHECKING\n'
            'if TYPE_CHECKING:\n    from simstudy import c\nKINDS = {"x": "simstudy.sub:run", "y": "numpy"}\n'
        ),
        "b.py": "import simstudy.sub.d\n",
        "c.py": "import numpy\n\ndef f():\n    from simstudy.a import x\n    import pandas\n",
        "sub/__init__.py": "from .d import y\n",
        "sub/d.py": "from ..c import z\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    monkeypatch.setattr(f"{__name__}.PACKAGE_DIR", root)
    return root


def test_walker_reads_module_level_function_level_relative_and_type_checking_imports(toy):
    modules, found = all_imports()
    assert set(modules) == {"simstudy", "simstudy.a", "simstudy.b", "simstudy.c", "simstudy.sub", "simstudy.sub.d"}
    eager = graph(found, modules, lazy=False)
    assert eager["simstudy.a"] == {"simstudy.b"}  # neither the TYPE_CHECKING import nor a name is run
    assert eager["simstudy.b"] == {"simstudy.sub", "simstudy.sub.d"}  # the parent package runs first
    assert eager["simstudy.sub"] == {"simstudy.sub.d"}
    assert eager["simstudy.sub.d"] == {"simstudy.c"}  # relative import resolved
    assert eager["simstudy.c"] == set()
    assert not cycles(eager)
    full = graph(found, modules, lazy=True)
    assert full["simstudy.c"] == {"simstudy.a"}
    assert full["simstudy.a"] == {"simstudy.b", "simstudy.sub"}  # loaded by name, not the docstring's
    assert cycles(full) == [["simstudy.a", "simstudy.b", "simstudy.sub.d", "simstudy.c", "simstudy.a"]]
    lazy = [(imp.module, imp.targets, imp.by_name) for imp in found if imp.lazy]
    assert lazy == [
        ("simstudy.a", ["simstudy.sub"], True),
        ("simstudy.c", ["simstudy.a"], False),
        ("simstudy.c", ["pandas"], False),
    ]
