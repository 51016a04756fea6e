"""The docs run as written: every fenced Python block of README.md and docs/ is executed, every
shell block is run, against the simulator — or is marked, with its reason, as one that cannot be.

Conventions (an HTML comment on the line right before the fence, invisible on the site):

- ``<!-- docs: partial — reason -->``: a fragment; it is compiled (top-level ``await`` allowed), not run.
- ``<!-- docs: pytest -->``: a test file; it is written to a temporary folder and run with pytest.
- ``<!-- docs: not run — reason -->``: a shell block that cannot run here (it installs, or runs long);
  each of its lines is still checked against what it names, as an inline command is.

A shell command in running text (a code span starting ``python``, ``smsactivate``, ``nox``, ``pip`` or
``mkdocs``) is run when it can run here without a key or minutes of time; otherwise it is checked
against what it names — the CLI's own parser takes its options, a script's ``--help`` lists its
options, nox has its session, pyproject.toml its extras and markers — and ``NOT_RUN`` says why.

A Python block runs with ``SMSActivate`` wired to an in-process simulator (any key is accepted, codes
come within a fraction of a second, polling is fast), and with these names already defined, as the
prose around such blocks says: ``client`` (an open client), ``key``, ``rent_id`` (a rented number),
``register_account`` (a handler). Blocks that ``await`` at top level run in an event loop; the others
run as a script would. Snippet includes (``--8<-- "examples/…"``) are the example files, which
tests/test_examples.py and tests/test_recipes.py run.
"""

from __future__ import annotations

import ast
import functools
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

import smsactivate_async
from smsactivate_async.simulator import CodeSchedule, Simulator

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"(?:^<!-- docs: (?P<mark>[^>]*?) -->\n)?^```(?P<lang>python|bash)[^\n]*\n(?P<body>.*?)^```",
                   re.M | re.S)


def blocks(lang: str) -> Iterator[Any]:
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            if match["lang"] != lang or match["body"].lstrip().startswith("--8<--"):
                continue
            line = text.count("\n", 0, match.start("body")) + 1
            yield pytest.param(match["body"], match["mark"] or "", id=f"{path.relative_to(ROOT)}:{line}")


def test_every_marked_block_says_why() -> None:
    for path in DOCS:
        for match in FENCE.finditer(path.read_text()):
            mark = match["mark"]
            if mark and mark != "pytest":
                assert re.match(r"(partial|not run) — \S", mark), f"{path}: a mark without its reason: {mark!r}"


# --- Python ------------------------------------------------------------------------------------------


class _World:
    def __init__(self) -> None:
        self.sim = Simulator(codes=CodeSchedule.within(0.01, 0.1), early_cancel_seconds=0,
                             api_keys={"YOUR_KEY": Decimal(10**6), "KEY": Decimal(10**6)})
        world = self

        class SimulatedSMSActivate(smsactivate_async.SMSActivate):
            """What the docs' blocks get as ``SMSActivate``: the simulator behind it."""

            def __init__(self, api_key: str, **options: Any) -> None:
                if options.get("transport") is None:  # a block with its own simulator keeps it
                    world.sim.accounts.setdefault(api_key, world.sim.accounts["KEY"])
                    options.update(transport=world.sim.transport(), poll_interval=0.02, early_cancel_window=0,
                                   rate_limit=None, rent_poll_interval=0.02)
                super().__init__(api_key, **options)

        self.cls = SimulatedSMSActivate


@pytest.fixture
def docs_world(monkeypatch: pytest.MonkeyPatch) -> _World:
    """The world the docs' blocks run in (see the module docstring)."""
    world = _World()
    monkeypatch.setattr(smsactivate_async, "SMSActivate", world.cls)
    monkeypatch.setenv("WEBHOOK_SECRET", "docs-secret-0123456789")
    monkeypatch.chdir(ROOT)
    return world


def _namespace(world: _World, client: Any, rent_id: int) -> dict[str, Any]:
    async def register_account(act: Any, code: str) -> None:
        assert code

    return {"__name__": "__docs__", "client": client, "key": "KEY", "rent_id": rent_id, "os": os,
            "register_account": register_account, "SMSActivate": world.cls}


@pytest.mark.parametrize(("body", "mark"), list(blocks("python")))
def test_python_block(body: str, mark: str, docs_world: _World, tmp_path: Path) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(body, "<docs>", "exec", flags=flags)
    if mark.startswith("partial"):
        return  # compiled: that is all a fragment promises
    if mark == "pytest":
        test_file = tmp_path / f"test_doc_{tmp_path.name}.py"  # a name of its own: pytest imports by name
        test_file.write_text(body)
        assert pytest.main(["-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                            "-o", "asyncio_default_fixture_loop_scope=function", str(test_file)]) == 0
        return
    awaits = code.co_flags & 0x80  # CO_COROUTINE: the block awaits at top level

    async def run() -> None:
        async with docs_world.cls("KEY") as client:
            rent = await client.get_rent_number(service="tg", rent_time=4)
            docs_world.sim.deliver_rent_sms(rent.id, "Your code is 4242")
            namespace = _namespace(docs_world, client, rent.id)
            if awaits:
                with anyio.fail_after(30):
                    await eval(code, namespace)
            else:
                await anyio.to_thread.run_sync(exec, code, namespace)  # a script: it may call anyio.run

    if awaits:
        # a rent's SMS comes after the wait starts: keep delivering while the block runs
        async def main() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(_keep_delivering_rent_sms, docs_world.sim)
                await run()
                group.cancel_scope.cancel()

        anyio.run(main)
    else:
        anyio.run(run)


async def _keep_delivering_rent_sms(sim: Simulator) -> None:
    while True:
        await anyio.sleep(0.05)
        for rent in list(sim.rents.values()):
            if rent.state == "active":
                sim.deliver_rent_sms(rent.id, "Your code is 4242")


# --- shell -------------------------------------------------------------------------------------------


def _unique(params: Iterator[Any]) -> list[Any]:
    """Each block once: README.md and docs/index.md share their set-up blocks word for word."""
    seen: set[str] = set()
    unique = []
    for param in params:
        if param.values[0] not in seen:
            seen.add(param.values[0])
            unique.append(param)
    return unique


@pytest.mark.slow  # the demo runs 100 activations over real HTTP, twice per page
@pytest.mark.parametrize(("body", "mark"), _unique(blocks("bash")))
def test_shell_block(body: str, mark: str) -> None:
    if mark.startswith("not run"):
        return
    for line in body.splitlines():
        command = line.split(" #")[0].strip()
        if not command:
            continue
        assert command.startswith(("python ", "smsactivate ")), f"only python commands run here: {command!r}"
        argv = [sys.executable, *command.split()[1:]] if command.startswith("python ") else \
            [sys.executable, "-m", "smsactivate_async", *command.split()[1:]]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


# --- shell commands in the prose ---------------------------------------------------------------------

#: An inline command (a code span in running text) starting with one of these is a command to paste.
INLINE_COMMAND = re.compile(r"`((?:python|smsactivate|nox|pip|mkdocs) [^`\n]*)`")
#: Those that a test cannot run, and why; each is still checked against what it names.
NOT_RUN = {
    "venv": "it makes a virtualenv and installs into it (CI's .ci/run does exactly this)",
    "nox": "nox builds virtualenvs of its own (installs); the session it names is checked to exist",
    "pip": "it installs; the extras it names are checked to exist",
    "mkdocs": "CI runs it (.ci/run); checked to be there",
    "pytest": "the test suite itself; the markers it names are checked to exist",
    "benchmark": "a benchmark runs for minutes; its --help is run and every option it names checked",
    "doctor": "it needs a provider account; its options are parsed by the command line itself",
    "codegen": "it rewrites a module of the package; tests/test_registry.py checks the two agree",
}


def inline_commands() -> Iterator[Any]:
    for path in DOCS:
        text = path.read_text()
        prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # fenced blocks are checked above
        for match in INLINE_COMMAND.finditer(prose):
            line = prose.count("\n", 0, match.start()) + 1
            yield pytest.param(match[1], id=f"{path.relative_to(ROOT)}:{line}")


def _kind(command: str) -> str:
    words = command.split()
    if words[:3] == ["python3", "-m", "venv"]:
        return "venv"
    if words[:3] == ["python", "-m", "pip"]:
        return "pip"
    if words[0] in ("nox", "pip", "mkdocs"):
        return words[0]
    if words[:3] == ["python", "-m", "pytest"]:
        return "pytest"
    if words[:2] == ["python", "-m"] and words[2] == "smsactivate_async._codegen":
        return "codegen"
    if words[0] == "python" and words[1].endswith(".py"):
        return "benchmark"
    cli_args = words[1:] if words[0] == "smsactivate" else words[3:]
    return "doctor" if cli_args[:1] == ["doctor"] else "cli"


def _placeholders(words: list[str]) -> list[str]:
    """``NAME`` and ``…`` stand for what the reader fills in."""
    return [{"NAME": "herosms", "…": "x" * 16}.get(word, word) for word in words]


@pytest.mark.parametrize("command", list(inline_commands()))
def test_inline_command(command: str, tmp_path: Path) -> None:
    check_command(command, tmp_path)


def _not_run_shell_lines() -> Iterator[Any]:
    for block in blocks("bash"):
        body, mark = block.values
        if mark.startswith("not run"):
            for offset, line in enumerate(body.splitlines()):
                command = line.split(" #")[0].strip()
                if command:
                    yield pytest.param(command, id=f"{block.id}+{offset}")


@pytest.mark.parametrize("command", list(_not_run_shell_lines()))
def test_shell_line_not_run_is_still_checked(command: str, tmp_path: Path) -> None:
    """A shell block that cannot run is not left unchecked: each line is checked as an inline command is."""
    check_command(command, tmp_path)


@functools.cache
def _script_help(script: str) -> tuple[int, str]:
    """A script's ``--help`` (exit status, then stdout or, on failure, stderr): once per script, however
    many pages name it."""
    done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, done.stdout if done.returncode == 0 else done.stderr


def check_command(command: str, tmp_path: Path) -> None:
    """Run ``command`` if it can run here; otherwise check it against what it names (see ``NOT_RUN``)."""
    words, kind = command.split(), _kind(command)
    assert kind == "cli" or kind in NOT_RUN, command
    if kind == "venv":
        assert words[3:6] == [".venv", "&&", "."] and words[6] == ".venv/bin/activate", command
    elif kind == "nox":
        assert words[1] == "-s"
        assert re.search(rf"^def {words[2]}\(session", (ROOT / "noxfile.py").read_text(), re.M), command
    elif kind == "pip":
        extras = re.fullmatch(r'"\.\[(.*)\]"', words[-1])  # pip install -e ".[extras]"
        assert extras, command
        pyproject = (ROOT / "pyproject.toml").read_text()
        for extra in extras[1].split(","):
            assert re.search(rf"^{extra} = \[", pyproject, re.M), f"{command}: no extra {extra!r}"
    elif kind == "mkdocs":
        assert command in (ROOT / ".ci" / "run").read_text()
    elif kind == "pytest":
        pyproject = (ROOT / "pyproject.toml").read_text()
        for marker in [after for before, after in itertools.pairwise(words[3:]) if before == "-m"]:
            assert f'"{marker}: ' in pyproject, f"{command}: no marker {marker!r}"
    elif kind == "codegen":
        import importlib

        assert callable(importlib.import_module("smsactivate_async._codegen").main)
    elif kind == "benchmark":
        assert (ROOT / words[1]).is_file(), command
        returncode, usage = _script_help(words[1])
        assert returncode == 0, usage
        for option in (word for word in words[2:] if word.startswith("--")):
            assert option in usage, f"{command}: {words[1]} has no {option}"
    else:
        from smsactivate_async._cli import cli

        args = _placeholders(words[1:] if words[0] == "smsactivate" else words[3:])
        if not args:  # the bare command: it prints its help
            done = subprocess.run([sys.executable, "-m", "smsactivate_async"], capture_output=True, text=True, timeout=60)
            assert "Commands:" in done.stdout + done.stderr
            return
        import click

        at = next((i for i, word in enumerate(args) if word in cli.commands), None)
        assert at is not None, f"{command}: names no command"
        name, rest = args[at], args[at + 1:]
        # each part parsed by its own parser: an option given to the wrong one raises
        for word in rest:
            if word.endswith(".jsonl"):  # a recording the reader made earlier
                (tmp_path / word).write_text("")
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(tmp_path)
            group = cli.make_context("smsactivate", args[:at]) if at else click.Context(cli)
            cli.commands[name].make_context(name, rest, parent=group)
        if kind == "cli" and name in ("providers",):  # what runs without a key or a server: run it
            done = subprocess.run([sys.executable, "-m", "smsactivate_async", *args], cwd=ROOT, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0 and done.stdout.strip(), done.stderr
