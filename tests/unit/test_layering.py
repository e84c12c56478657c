"""The import graph of app/ has no cycle and keeps its layers: core below everything, providers below the app.

Every import counts, including those inside functions and under TYPE_CHECKING: a cycle hidden in a
function body is still a cycle a reader has to untangle.
"""
import ast
import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in APP.rglob("*.py")}


def imports_of(module: str) -> set[str]:
    """The app modules `module` imports (`from app import x` counts as app.x when x is a module)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & set(MODULES)
            found |= submodules or {base}  # `from app import jsonio` imports app.jsonio, not the package's own code
        elif (module == "app.providers.registry" and isinstance(node, ast.Constant)
              and isinstance(node.value, str) and node.value.startswith("app.providers.")):
            found.add(node.value.rpartition(".")[0])  # the registry names provider classes as "module.Class"
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_is_seen():
    assert {"app.core.request", "app.providers.transport", "app.config", "app.routing"} <= set(GRAPH)


def test_the_registry_is_seen_importing_every_provider():
    """Its entries are strings ("module.Class"); the graph still counts them as imports."""
    providers = {m for m in MODULES if m.startswith("app.providers.")} - {
        "app.providers.registry", "app.providers.base", "app.providers.capabilities", "app.providers.transport",
        "app.providers.retired"}
    assert providers <= GRAPH["app.providers.registry"]


def test_no_import_cycle():
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_core_imports_only_core():
    for module, targets in GRAPH.items():
        if module.startswith("app.core"):
            assert {t for t in targets if not t.startswith("app.core")} == set(), module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("app.providers.")))
def test_providers_never_reach_up(module):
    """Providers know the core, media helpers and downloads; never the API surfaces, config or routing."""
    above = {"app.config", "app.routing", "app.routing_config", "app.chat_request", "app.images_request",
             "app.dispatch", "app.generation", "app.resilience", "app.answers", "app.streaming", "app.errors"}
    assert GRAPH[module] & above == set()
    assert not any(target.startswith("app.api") for target in GRAPH[module])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("app.providers.")))
def test_only_the_transport_touches_requests(module):
    tree = ast.parse(MODULES[module].read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert ("requests" in names) == (module == "app.providers.transport")


def test_the_readme_development_map_names_every_module_of_the_core_the_providers_and_the_app_root():
    """The map in README.md is how a newcomer finds a module: a module it does not name is lost."""
    readme = (APP.parent / "README.md").read_text()
    start = readme.index("## Development")
    block = readme[readme.index("```", start):readme.index("```", readme.index("```", start) + 3)]
    shown = {Path(path).name for path in MODULES.values()
             if path.parent in (APP, APP / "core", APP / "providers") and path.name != "__init__.py"}
    missing = sorted(name for name in shown if not re.search(rf"(?<![\w.]){re.escape(name)}\b", block))
    assert missing == []
