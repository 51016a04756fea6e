"""Sessions: tests, slow, dst (deterministic simulation), lint, typecheck, soak (the long reliability
run), bench."""

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """The real-time, multi-process and large runs (CI runs them after the quick ones)."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", "-m", "slow", *session.posargs)


@nox.session
def dst(session: nox.Session) -> None:
    """Deterministic simulation: ``nox -s dst -- --schedules 100000`` (``--seed N --verbose`` replays one)."""
    session.install("-e", ".[dev]")
    session.run("python", "tests/simulation.py", *(session.posargs or ["--schedules", "2000"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy", "smsactivate_async", "tests", "examples", "benchmarks")


@nox.session
def soak(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", "-m", "soak", "-o", "addopts=", "tests/test_soak.py", env={"SOAK_ACTIVATIONS": "5000"})


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".[dev,bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def fleet(session: nox.Session) -> None:
    """4 worker processes on one key, one SIGKILLed (sqlite and Redis): the README's fleet tables."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/fleet.py", *session.posargs)


@nox.session
def throughput(session: nox.Session) -> None:
    """1 000 activations under HeroSMS's limit: fixed 4/s, fixed 50/s, adaptive."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/throughput.py", *session.posargs)


@nox.session
def conformance(session: nox.Session) -> None:
    """Five published third-party clients against the simulator on loopback (the conformance extra)."""
    session.install("-e", ".[dev,conformance]")
    session.run("pytest", "-q", "-m", "conformance", "tests/test_conformance.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs Material + mkdocstrings), built with --strict into site/."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def fresh(session: nox.Session) -> None:
    """Fail if docs/benchmarks.md was measured on other code (CI only warns; a release regenerates it)."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/run_all.py", "--check")


@nox.session
def mutants(session: nox.Session) -> None:
    """Apply each patch of tests/mutants/ to a copy and check that the harness or its tests catch it."""
    session.install("-e", ".[dev]")
    session.run("python", "tests/mutants/run.py", *session.posargs)


@nox.session
def mutmut(session: nox.Session) -> None:
    """One mutmut pass over the rooms where a mistake costs money ([tool.mutmut] in pyproject.toml;
    hours on two cores), then its survivors; triage them as docs/development.md says."""
    session.install("-e", ".[dev]", "mutmut>=3.3")
    session.run("mutmut", "run", "--max-children", str(os.cpu_count() or 2), *session.posargs)
    session.run("mutmut", "results")
