"""Mutants kept as tests: each ``*.patch`` here is a small, realistic mistake in the library; this
script applies each to a copy of the checkout and runs the checks its header names. Every mutant must
be caught — by the simulation harness finding a violation, or by a named test failing.

A patch's header (lines before the diff, each starting ``# ``)::

    # mistake: what a tired maintainer got wrong
    # catch: harness FIRST_SEED COUNT        (python tests/simulation.py: a violation, or a finding of a
                                             #  client slower than its budget allows, in those schedules)
    # catch: pytest tests/test_x.py::name    (that test fails)

A mutant is caught when any of its checks catches it; a patch that no longer applies is reported as
stale (and fails the run: mend it to the code as it is now). Run::

    python tests/mutants/run.py               # every mutant, two at a time
    python tests/mutants/run.py --only 02     # those whose name contains "02"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: what a copy needs to run the harness and the tests
COPIED = ("smsactivate_async", "tests", "examples", "docs", "benchmarks", "pyproject.toml", "README.md")
#: one check's time limit: a harness run that hangs is itself reported (its budgets), well before this
CHECK_SECONDS = 240


def header(patch: Path) -> tuple[str, list[list[str]]]:
    mistake, checks = "", []
    for line in patch.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        if key == "mistake":
            mistake = value
        elif key == "catch":
            checks.append(value.split())
    return mistake, checks


def _copy(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "site", "venv")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, target / name)


def run_check(copy: Path, check: list[str]) -> tuple[bool, str]:
    """(caught, how)."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONHASHSEED": "0"}
    kind, *args = check
    if kind == "harness":
        first, count = args
        command = [sys.executable, "tests/simulation.py", "--schedules", count, "--first-seed", first]
    elif kind == "pytest":
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider",
                   "-m", "", "-o", "addopts=", *args]
    else:
        return False, f"unknown check {kind!r}"
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=CHECK_SECONDS)
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(check)}: no verdict within {CHECK_SECONDS} s"
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    if kind == "harness":
        found = next((line for line in output.splitlines() if line.startswith(("Violation: seed", "finding: seed"))),
                     None)
        if done.returncode != 0 and found:
            return True, f"harness in {took:.0f} s: {found.removeprefix('Violation: ')[:110]}"
        return False, f"harness {first}+{count}: every invariant held ({took:.0f} s)"
    if done.returncode == 1:
        return True, f"{args[0]} failed in {took:.0f} s"
    return False, f"{args[0]}: exit {done.returncode} ({took:.0f} s)"


def run_mutant(patch: Path) -> tuple[str, bool, str]:
    mistake, checks = header(patch)
    with tempfile.TemporaryDirectory(prefix="mutant-") as folder:
        copy = Path(folder)
        _copy(copy)
        applied = subprocess.run(["git", "apply", str(patch)], cwd=copy, capture_output=True, text=True)
        if applied.returncode != 0:
            return patch.stem, False, f"STALE: the patch no longer applies ({applied.stderr.strip()[:200]})"
        if not checks:
            return patch.stem, False, "no check named in its header"
        notes = []
        for check in checks:
            caught, how = run_check(copy, check)
            notes.append(how)
            if caught:
                return patch.stem, True, how
        return patch.stem, False, f"{'; '.join(notes)} — the mistake: {mistake}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the mutants whose name contains this")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    patches = sorted(p for p in HERE.glob("*.patch") if not args.only or args.only in p.stem)
    if not patches:
        print("no mutant matched")
        return 1
    started = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run_mutant, patches))
    width = max(len(name) for name, _, _ in results)
    for name, caught, how in results:
        print(f"{name:<{width}}  {'caught' if caught else 'MISSED'}  {how}")
    missed = [name for name, caught, _ in results if not caught]
    print(f"{len(results) - len(missed)} of {len(results)} mutants caught in {time.monotonic() - started:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
