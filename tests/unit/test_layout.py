"""The layout keeps what docs/architecture.md ("Where the code is") says:
no import cycle between the project's modules, the placement code free of
the database, HTTP, Flask and Docker, and the shared layer (serving/)
importing none of the services. Read from the source with `ast`, so an
import inside a function counts too; only imports under
`if TYPE_CHECKING:` (never executed) are left out."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("seeker", "helper", "channel", "serving")
IO_LIBRARIES = {"pymongo", "bson", "gridfs", "flask", "werkzeug", "requests", "urllib3", "docker"}
SERVICES = {"seeker", "helper", "channel"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


MODULES = modules()


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            yield from _import_nodes(ast.Module(body=node.orelse, type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _import_nodes(node)


def imports_of(name: str) -> set[str]:
    """The modules `name` imports: the project's by module name (a name
    imported from a package is its submodule when there is one), others by
    their top-level name."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m if m in MODULES else m.split(".")[0] for m in found}


GRAPH = {name: {m for m in imports_of(name) if m in MODULES and m != name} for name in MODULES}


def cycles() -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(GRAPH[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            on_stack.difference_update(group)
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(GRAPH[node])
    return seen


def test_the_walk_sees_the_project():
    assert "seeker.placement.pipeline" in MODULES and "serving.openapi" in MODULES
    assert "seeker.models" in GRAPH["seeker.placement.views"]
    assert "flask" in imports_of("serving.access")


def test_no_import_cycle_between_modules():
    assert cycles() == []


def test_placement_imports_no_database_http_flask_or_docker():
    for name in MODULES:
        if name.startswith("seeker.placement"):
            for module in reachable(name):
                outside = imports_of(module) & IO_LIBRARIES
                assert not outside, f"{name} reaches {module}, which imports {sorted(outside)}"


def test_the_shared_layer_imports_no_service():
    for name in MODULES:
        if name.startswith("serving"):
            services = {m.split(".")[0] for m in imports_of(name)} & SERVICES
            assert not services, f"{name} imports {sorted(services)}"
