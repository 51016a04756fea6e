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
