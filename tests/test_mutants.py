"""Every mutant in tests/mutants/ — a small, realistic mistake each — is caught by the harness or by
the tests its patch names (issue 37). About a minute and a half on two cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_there_are_mutants_of_every_class_the_suite_must_catch() -> None:
    names = {p.stem.split("-", 1)[1] for p in (HERE / "mutants").glob("*.patch")}
    assert len(names) >= 12
    assert {"burst-one-too-generous", "jobs-never-restart", "deferred-cancel-dropped", "code-handed-twice",
            "push-trusted", "lease-not-renewed", "intent-after-request", "rent-message-skipped"} <= names
    for patch in (HERE / "mutants").glob("*.patch"):
        head = patch.read_text().splitlines()[:4]
        assert head[0].startswith("# mistake: ") and any(line.startswith("# catch: ") for line in head), patch.name


@pytest.mark.slow
def test_every_mutant_is_caught() -> None:
    done = subprocess.run([sys.executable, str(HERE / "mutants" / "run.py")], capture_output=True, text=True,
                          timeout=560)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
