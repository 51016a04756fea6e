"""The examples run (against the simulator) and do what they say."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.anyio



@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSACTIVATE_API_KEY", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))


def example(name: str) -> Any:
    return importlib.import_module(name)


async def test_bot_handler() -> None:
    assert (await example("bot_handler").main()).startswith("Your code: ")


async def test_bulk() -> None:
    results = await example("bulk").main(200)
    assert results == {"codes": 200, "failed": 0}


async def test_rent() -> None:
    message = await example("rent").main()
    assert message.text == "Your code is 2792"


async def test_webhooks() -> None:
    codes = await example("webhooks").main(5)
    assert len(codes) == 5 and all(code.isdigit() for code in codes.values())


async def test_choose_provider() -> None:
    number = await example("choose_provider").main()
    assert number.activation_id > 0


def test_plugin_example_runs() -> None:
    # in this process (-n 0): the project's addopts would start workers of its own
    assert pytest.main(["-q", "-p", "no:cacheprovider", "-n", "0", str(EXAMPLES / "test_with_simulator.py")]) == 0


def test_cli_without_key_and_with_simulator(tmp_path: Path) -> None:
    from smsactivate_async._cli import cli
    from smsactivate_async.simulator import Simulator, serve_in_thread

    runner = CliRunner()
    missing = runner.invoke(cli, ["balance"], env={"SMSACTIVATE_API_KEY": ""})
    assert missing.exit_code == 2 and "API key" in missing.output
    sim = Simulator()
    with serve_in_thread(sim) as url:
        base = ["--api-key", sim.api_key, "--base-url", url, "--json"]
        assert runner.invoke(cli, [*base, "balance"]).output.strip() == '{"balance": "1000"}'
        bought = runner.invoke(cli, [*base, "buy", "--service", "tg", "--country", "0"])
        assert bought.exit_code == 0 and '"phone_number"' in bought.output
        bad = runner.invoke(cli, ["--api-key", "wrong", "--base-url", url, "balance"])
        assert bad.exit_code == 3 and "BAD_KEY" in bad.output
        table = runner.invoke(cli, ["--api-key", sim.api_key, "--base-url", url, "services"])
        assert table.exit_code == 0 and "Telegram" in table.output
    assert os.environ.get("SMSACTIVATE_API_KEY") is None
    assert sys.modules.get("smsactivate_async._cli") is not None


@pytest.mark.slow
def test_benchmark_script_runs_quick() -> None:
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    result = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for section in ("1. Requests per poll tick", "2. Per-call overhead", "3. 500 waiters", "4. Parsing", "5. Code latency"):
        assert section in result.stdout


def test_rent_benchmark_runs_quick_and_hands_every_message_once() -> None:
    """Issue 42's measure, small: rents over four virtual hours, one and five waiters per rent."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "rents.py"
    result = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 10 |")]
    assert len(rows) == 2 and all("| 100/100 | yes |" in row for row in rows), result.stdout
    assert rows[0].split("|")[8] == rows[1].split("|")[8]  # five waiters a rent cost what one does


@pytest.mark.slow
def test_soak_benchmark_script_runs_small() -> None:
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"
    result = subprocess.run([sys.executable, str(script), "60", "--dialect", "herosms"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| bought twice / orphan purchases | 0 / 0 |" in result.stdout
    assert "| codes delivered | 60 of 60 |" in result.stdout


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_many_workers(backend: str, request: pytest.FixtureRequest) -> None:
    store = request.getfixturevalue("redis_url") if backend == "redis" else None
    report = await example("many_workers").main(store)
    # on the simulator every code arrives within half a second: worker-a read one, and the two it never
    # read are finished too (the server refuses a cancel after a code)
    assert len(report.finished) == 3 and report.cancelled == report.pending == []
