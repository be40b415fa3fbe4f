"""The layers of pipeline/ follow the data path: every import goes down, none closes a cycle.

Every `import` in a module counts, at module level or inside a function (an import moved
into a function to get round a cycle still makes one), so the graph is read from the source
with `ast`, not from what one run happens to import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"

# Lowest first. An entry is a module, or a package with all below it (`.*`).
# The fingerprint of what shapes output is made of the settings, so it sits with them; the
# stores (state, outbox) below the publication decision, which reads the records of earlier
# builds; the renderers below social and delivery, which render with them; what the service
# and `status` share (schedule.py) below the verbs, among them the service (commands/run.py);
# the desk (a web app that compiles and approves as the verbs do, with its own two verbs) on top.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "pipeline",
            "pipeline.errors",
            "pipeline.private",
            "pipeline.csvcells",
            "pipeline.workers",
        ),
    ),
    ("config", ("pipeline.config", "pipeline.scaffold", "pipeline.fingerprints")),
    ("content", ("pipeline.content.*",)),
    ("state", ("pipeline.state.*",)),
    ("outbox", ("pipeline.outbox",)),
    ("publish", ("pipeline.publish", "pipeline.horizon")),
    ("render", ("pipeline.render.*",)),
    ("social", ("pipeline.social.*",)),
    ("delivery", ("pipeline.delivery.*",)),
    ("schedule", ("pipeline.schedule",)),
    ("commands", ("pipeline.commands.*",)),
    ("desk", ("pipeline.desk.*",)),
    ("cli", ("pipeline.cli", "pipeline.__main__")),
)


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that an import of `name` runs (a name inside a module: that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """For each module, the modules of pipeline/ it imports anywhere in its source, with the
    first line of each import."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # `from pipeline.render import site` imports the module pipeline.render.site.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                if target == "pipeline" or target.startswith("pipeline."):
                    known = _known(target, modules)
                    if known is not None and known != name:
                        found.setdefault(known, node.lineno)
        graph[name] = found
    return graph


def layer_of(module: str) -> int:
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            package = entry.removesuffix(".*")
            if module == package or (entry.endswith(".*") and module.startswith(package + ".")):
                return index
    raise AssertionError(f"{module} is in no layer: give it one in LAYERS")


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward(graph: dict[str, dict[str, int]]) -> dict[tuple[str, str], int]:
    return {
        (source, target): line
        for source, targets in graph.items()
        for target, line in targets.items()
        if layer_of(target) > layer_of(source)
    }


def test_every_module_has_a_layer() -> None:
    for module in module_files():
        layer_of(module)


def test_no_import_cycles() -> None:
    found = cycles(imports(module_files()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_only_go_down() -> None:
    modules = module_files()
    found = upward(imports(modules))
    unexpected = [
        f"{modules[source].relative_to(PACKAGE.parent)}:{line}: {source} "
        f"({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for (source, target), line in sorted(found.items())
    ]
    assert not unexpected, "upward imports:\n" + "\n".join(unexpected)


def test_the_checks_see_function_level_imports(tmp_path: Path) -> None:
    """A cycle hidden in a function, and an upward import in one, are found."""
    package = tmp_path / "pipeline"
    (package / "content").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("def f():\n    from pipeline.content import model\n")
    (package / "content" / "model.py").write_text("def g():\n    from . import body\n")
    (package / "content" / "body.py").write_text("from pipeline.content.model import g\n")
    modules = {
        "pipeline": package / "__init__.py",
        "pipeline.errors": package / "errors.py",
        "pipeline.content.model": package / "content" / "model.py",
        "pipeline.content.body": package / "content" / "body.py",
    }
    graph = imports(modules)
    assert cycles(graph) == [["pipeline.content.body", "pipeline.content.model"]]
    assert set(upward(graph)) == {("pipeline.errors", "pipeline.content.model")}


# All SQL of the state store is in pipeline/state/ (issue 16). The render cache
# (pipeline/content/cache.py) is a file of this machine's own, below the state layer, that
# may be deleted at any time: not the state store, so it keeps its few statements.
_SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE|PRAGMA\s+\w+)",
    re.IGNORECASE | re.DOTALL,
)
_OWN_SQL = {"pipeline.content.cache"}


def test_no_sql_outside_the_state_layer() -> None:
    found = []
    for name, path in module_files().items():
        if name == "pipeline.state" or name.startswith("pipeline.state.") or name in _OWN_SQL:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if "sqlite3" in modules or (
                    isinstance(node, ast.ImportFrom) and (node.module or "") == "sqlite3"
                ):
                    found.append(f"{path.name}:{node.lineno}: import sqlite3")
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _SQL.search(node.value)
            ):
                found.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
    assert not found, "SQL buiten pipeline/state/:\n" + "\n".join(found)
