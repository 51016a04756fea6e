"""The package's layout: which module may depend on which (no import cycles, the scheduler never
reaches back into the client) — checked on the source, so a hidden import inside a function counts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from smsactivate_async import InvalidArgumentError, SMSActivate

PACKAGE = Path(__file__).resolve().parent.parent / "smsactivate_async"


def imports_of(module: str) -> set[str]:
    """Every ``smsactivate_async`` module ``module`` imports, at any depth of its code (TYPE_CHECKING too)."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level >= 1:
            found.update(alias.name for alias in node.names)
    return found


def test_the_scheduler_does_not_know_the_client() -> None:
    assert not imports_of("_waiting") & {"_client", "_activation", "_buying", "webhooks", "_recovery"}


def test_no_module_imports_the_client_at_run_time() -> None:
    """Only the front door (``__init__``), the CLI and the demo build clients; the helpers that need
    one name it for the type checker only."""
    for path in PACKAGE.glob("*.py"):
        module = path.stem
        if module in ("__init__", "_cli", "_demo", "_client"):
            continue
        tree = ast.parse(path.read_text())
        runtime = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "_client"]
        hidden = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                  for inner in ast.walk(node) if isinstance(inner, ast.ImportFrom) and inner.module == "_client"]
        assert not runtime and not hidden, f"{module} imports _client at run time"


def test_the_client_composes_the_scheduler_with_live_settings() -> None:
    client = SMSActivate("k", rate_limit=None, poll_interval=2.0)
    scheduler = client._get_scheduler()
    client.poll_interval = 0.5  # a setting changed later reaches the scheduler
    assert scheduler._interval() == 0.5 and client.with_options()._get_scheduler() is scheduler
    with pytest.raises(InvalidArgumentError):
        client.poll_interval = 0
    with pytest.raises(InvalidArgumentError):
        client.early_cancel_window = -1


def test_every_public_name_and_method_is_documented() -> None:
    """The API reference is generated from docstrings: none may be missing."""
    import inspect

    import smsactivate_async
    import smsactivate_async.simulator
    import smsactivate_async.webhooks

    missing = []
    for module in (smsactivate_async, smsactivate_async.webhooks, smsactivate_async.simulator):
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not obj.__doc__ or obj.__doc__.startswith(f"{name}("):  # attrs' generated signature is no doc
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    function = member.fget if isinstance(member, property) else member
                    if not attr.startswith("_") and inspect.isfunction(function) and not function.__doc__:
                        missing.append(f"{module.__name__}.{name}.{attr}")
    assert missing == []


SIMULATOR = PACKAGE / "simulator"
AREAS = ("_catalogue", "_activations", "_calls", "_rent", "_partner")


def test_simulator_handlers_declare_quirks_instead_of_branching_on_the_provider() -> None:
    """A provider's quirk is a field of its DialectProfile; the handlers never test who they are."""
    for area in AREAS:
        source = (SIMULATOR / f"{area}.py").read_text()
        assert "dialect ==" not in source and ".dialect" not in source and "_hero" not in source, area
        assert "content-type" not in source.lower(), f"{area} formats HTTP by hand"


def test_every_action_has_one_simulator_handler_in_an_area_module() -> None:
    from smsactivate_async._actions import ACTIONS
    from smsactivate_async.simulator._handlers import HANDLERS

    assert {action.wire for action in ACTIONS.values()} <= set(HANDLERS)
    assert {handler.__module__.rsplit(".", 1)[1] for handler in HANDLERS.values()} == set(AREAS)


def test_the_simulator_imports_nothing_of_the_client() -> None:
    """Written from the protocol documents, so that one misunderstanding cannot pass on both sides
    (the pytest plugin, which hands tests a client wired to it, is the one exception)."""
    for path in SIMULATOR.glob("*.py"):
        if path.name == "pytest_plugin.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.level < 2 and not node.module.startswith("smsactivate_async."), (path.name, node.module)


def test_every_file_a_docstring_names_exists() -> None:
    """Docstrings that match the code (issue 38): a path a docstring points a reader to — a script, a
    test, a page, a module of the package — is there."""
    import re

    root = PACKAGE.parent
    named = re.compile(r"(?<![\w/.])((?:scripts|tests|docs|benchmarks|examples|smsactivate_async)/[\w./-]+\.(?:py|md|json))")
    module = re.compile(r"(?<![\w/.])(_\w+\.py)\b")
    modules = {path.name for path in PACKAGE.rglob("*.py")}
    missing, seen = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in [tree, *ast.walk(tree)]:
            if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            doc = ast.get_docstring(node) or ""
            paths, names = named.findall(doc), module.findall(doc)
            seen += len(paths) + len(names)
            missing += [f"{path.relative_to(root)}: {name}" for name in paths if not (root / name).exists()]
            missing += [f"{path.relative_to(root)}: {name}" for name in names if name not in modules]
    assert not missing, missing
    assert seen > 5  # the patterns still find the references there are


def test_no_import_circle() -> None:
    """Issue 38: no module imports, even for the type checker alone, one that imports it back. The
    session, the scheduler and the strays, the stores, the facade (the handles and buying take the
    client as the ``Owner`` and ``Buyer`` protocols; ``ProviderPool`` sits above the client), the
    doctor and webhooks (the client's parts, a ``WebhookTarget``), and the simulator's handlers (a
    ``Server`` protocol) each call only down."""
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph = {module: imports_of(module) & modules for module in modules}
    sim_modules = {f"simulator.{path.stem}" for path in (PACKAGE / "simulator").glob("*.py")}
    for module in sim_modules:
        graph[module] = {f"simulator.{name}" for name in imports_of(module)} & sim_modules

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[frozenset[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert sorted(map(sorted, circles)) == []
    assert {"simulator._app", "simulator._handlers"} <= set(graph) and "_client" in imports_of("_pool")  # it reads both
    assert not {"_waiting", "_strays", "_rent", "_settlement", "_reconcile", "_polling"} & imports_of("_session")
    assert not {"_store_sqlite", "_store_redis", "_stores"} & imports_of("_store")


#: the house as docs/development.md draws it, top to bottom: a module imports only from its own layer and
#: those below it (type-only imports included), and a new module must be given its layer here
LAYERS: list[tuple[str, frozenset[str]]] = [
    ("front door", frozenset({"__init__", "__main__", "_cli", "_demo"})),
    ("facade", frozenset({"_pool", "_client", "_activation", "_buying", "_doctor", "webhooks", "_fleet_view"})),
    ("fleet and rent waits", frozenset({"_fleet", "_recovery", "_rent"})),
    ("settlement", frozenset({"_settlement", "_strays", "_reconcile"})),
    ("waiting", frozenset({"_waiting", "_scan", "_deadlines", "_polling", "_cancels"})),
    ("requests", frozenset({"_session"})),
    ("state", frozenset({"_journal", "_policy", "_telemetry", "_news", "_stores", "_store_redis", "_store_sqlite"})),
    ("ground", frozenset({"_actions", "_generated", "_codegen", "_parse", "_wire", "_params", "_transport", "_hooks",
                          "_providers", "_record", "_models", "_convert", "_exceptions", "_outcome", "_clock", "_tasks",
                          "_serving", "_store", "_urls"})),
]


def test_the_layers_hold_as_drawn() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    placed = [module for _, members in LAYERS for module in members]
    assert sorted(placed) == sorted(modules), set(placed) ^ modules  # each module in one layer
    depth = {module: index for index, (_, members) in enumerate(LAYERS) for module in members}
    upward = sorted(f"{module} ({LAYERS[depth[module]][0]}) imports {other} ({LAYERS[depth[other]][0]})"
                    for module in modules for other in imports_of(module) & modules if depth[other] < depth[module])
    assert upward == []
    text = (PACKAGE.parent / "docs" / "development.md").read_text()
    architecture = text[text.index("## Architecture"):text.index("## The HTTP stack")]
    for module in modules - {"__init__", "__main__"}:
        assert f"`{module}.py`" in architecture, f"{module} is not in the table of layers"
