"""docs/benchmarks.md carries the hash of the code its tables measured (issue 27); whether that is this
checkout's code is checked apart from the tests (`python benchmarks/run_all.py --check`, issue 37)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_published_tables_carry_a_hash_the_check_can_read() -> None:
    """Freshness itself is a check of its own (`python benchmarks/run_all.py --check`, `nox -s fresh`, a
    warning in CI): an edit of a measured module must not fail the quick suite (issue 37)."""
    run_all = _run_all()
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert run_all.BEGIN in text and run_all.END in text
    published = run_all.published_hash(text)
    assert published is not None and len(published) == len(run_all.code_hash())
    assert run_all.check() in (0, 1)


def test_the_hash_covers_the_client_and_the_scripts_not_the_command_line() -> None:
    names = {path.name for path in _run_all().measured_files()}
    assert {"_session.py", "_waiting.py", "_parse.py", "_wire.py", "run.py", "farm.py"} <= names
    assert "_cli.py" not in names and "run_all.py" not in names
