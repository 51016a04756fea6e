"""The docs run as written: every fenced Python block of README.md and docs/ is executed, every
shell block is run, against the simulator — or is marked, with its reason, as one that cannot be.

Conventions (an HTML comment on the line right before the fence, invisible on the site):

- ``<!-- docs: partial — reason -->``: a fragment; it is compiled (top-level ``await`` allowed), not run.
- ``<!-- docs: pytest -->``: a test file; it is written to a temporary folder and run with pytest.
- ``<!-- docs: not run — reason -->``: a shell block that cannot run here (it installs, or runs long).

A Python block runs with ``SMSActivate`` wired to an in-process simulator (any key is accepted, codes
come within a fraction of a second, polling is fast), and with these names already defined, as the
prose around such blocks says: ``client`` (an open client), ``key``, ``rent_id`` (a rented number),
``register_account`` (a handler). Blocks that ``await`` at top level run in an event loop; the others
run as a script would. Snippet includes (``--8<-- "examples/…"``) are the example files, which
tests/test_examples.py and tests/test_recipes.py run.
"""

from __future__ import annotations

import ast
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
                                   rate_limit=None)
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


@pytest.mark.slow  # the demo runs 100 activations over real HTTP, twice per page
@pytest.mark.parametrize(("body", "mark"), list(blocks("bash")))
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
