"""The package's shape: no import cycles inside ``realtime/`` and no module too long to read in one sitting.

Every import counts, also those inside functions and under ``if TYPE_CHECKING:``: a cycle dodged by a late
import is still a cycle a reader has to untangle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import realtime

PACKAGE_DIR = Path(realtime.__file__).resolve().parent
MAX_LINES = 300

#: The layers of README "How it works", top first; a module may import from its own layer and those below.
LAYERS = (
    ("realtime", "realtime.cli", "realtime.http", "realtime.docs"),
    ("realtime.features",),
    ("realtime.cluster",),
    ("realtime.sockets",),
    ("realtime.services", "realtime.auth"),
    ("realtime.fanout",),
    ("realtime.stores",),
    ("realtime.stores.redis",),
)
#: The two modules that wire every layer together: the server's factory and the emitter for other processes.
WIRING = ("realtime.services.factory", "realtime.fanout.emitter")


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not ``.__init__``)."""
    modules: dict[str, Path] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports, wherever in the file the import statement sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # ``from realtime.http import api`` imports the module realtime.http.api.
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports."""
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module``'s layer (its deepest listed package); the modules in none of
    them (schemas, config, errors, identifiers, …) are the bottom layer."""
    matches = [
        (package.count("."), index)
        for index, packages in enumerate(LAYERS)
        for package in packages
        if module == package or (package != "realtime" and module.startswith(package + "."))
    ]
    return max(matches)[1] if matches else len(LAYERS)


def test_graph_sees_imports_inside_functions_and_type_checking_blocks() -> None:
    graph = import_graph()
    # create_app imports the factory inside the function; the container imports the stores' types.
    assert "realtime.services.factory" in graph["realtime"]
    assert "realtime.stores.recovery" in graph["realtime.services.container"]


def test_layer_of_takes_the_deepest_listed_package() -> None:
    assert layer_of("realtime") == 0
    assert layer_of("realtime.stores.redis.keys") > layer_of("realtime.stores.chat") > layer_of("realtime.sockets.dispatch")
    assert layer_of("realtime.errors") == layer_of("realtime.schemas.chat") == len(LAYERS)


def test_find_cycle_reports_the_path() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, (
        f"import cycle: {' -> '.join(cycle or [])}. Invert the dependency: a Protocol in the lower module, "
        "the concrete object wired in by realtime/services/factory.py."
    )


def test_no_module_over_the_line_limit() -> None:
    long = {
        str(path.relative_to(PACKAGE_DIR.parent)): count
        for path in module_files().values()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by concern): {long}"


def test_layers_import_downwards_only() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module not in WIRING
        for target in sorted(targets)
        if layer_of(target) < layer_of(module)
    ]
    assert not upward, "imports from a higher layer (README \"How it works\"): " + "; ".join(upward)
