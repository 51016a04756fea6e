"""Installed as a user installs it: the wheel, built from this checkout, into fresh virtualenvs, one
extra at a time. Each extra does what the README promises, or says in one line which extra to add.
(Slow: each virtualenv installs the dependencies from the package index.)"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    assert "deprecat" not in built.stderr.lower(), built.stderr[-2000:]  # e.g. project.license as a table
    (found,) = out.glob("smsactivate_async-*.whl")
    return found


def install(tmp_path: Path, wheel: Path, extras: str) -> Path:
    env = tmp_path / f"venv-{extras or 'bare'}"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    target = f"{wheel}[{extras}]" if extras else str(wheel)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", target], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return python


def run(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=300, cwd=python.parent)


def one_line_naming(done: subprocess.CompletedProcess[str], extra: str) -> bool:
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return done.returncode != 0 and len(lines) == 1 and f"smsactivate-async[{extra}]" in lines[0]


def test_the_bare_package_works_and_the_cli_names_its_extra(tmp_path: Path, wheel: Path) -> None:
    python = install(tmp_path, wheel, "")
    assert run(python, "-c", "import smsactivate_async; print(smsactivate_async.SMSActivate)").returncode == 0
    assert one_line_naming(run(python, "-m", "smsactivate_async", "demo"), "cli")


def test_cli_alone_names_the_simulator_extra_for_the_demo(tmp_path: Path, wheel: Path) -> None:
    python = install(tmp_path, wheel, "cli")
    assert run(python, "-m", "smsactivate_async", "providers").returncode == 0
    assert one_line_naming(run(python, "-m", "smsactivate_async", "demo", "--activations", "5"), "simulator")


def test_cli_and_simulator_run_the_demo(tmp_path: Path, wheel: Path) -> None:
    python = install(tmp_path, wheel, "cli,simulator")
    done = run(python, "-m", "smsactivate_async", "demo", "--activations", "20")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.parametrize(("extra", "check"), [
    ("redis", "from smsactivate_async import SMSActivate; SMSActivate('k', store='redis://127.0.0.1:1/0')"),
    ("socks", "from smsactivate_async import SMSActivate; SMSActivate('k', proxy='socks5://127.0.0.1:1080')"),
    ("webhooks", "import uvicorn, smsactivate_async.webhooks"),
])
def test_each_extra_brings_what_it_promises(tmp_path: Path, wheel: Path, extra: str, check: str) -> None:
    python = install(tmp_path, wheel, extra)
    done = run(python, "-c", check)
    assert done.returncode == 0, done.stderr[-2000:]


def test_without_the_redis_extra_a_redis_store_names_it(tmp_path: Path, wheel: Path) -> None:
    python = install(tmp_path, wheel, "")
    done = run(python, "-c", "from smsactivate_async import SMSActivate; SMSActivate('k', store='redis://h:1/0')")
    assert done.returncode != 0 and "smsactivate-async[redis]" in done.stderr
