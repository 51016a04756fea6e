"""The crash story, with real processes: a worker is killed with SIGKILL while it holds bought
numbers (two of them with their code) and two rents; a survivor on the same journal closes them all."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from smsactivate_async import SMSActivate
from smsactivate_async.simulator import CodeSchedule, Simulator
from smsactivate_async.simulator._core import ActivationState
from smsactivate_async.simulator._transport import serve_in_thread

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent


def _read_line(process: subprocess.Popen[str], prefix: str, timeout: float = 30.0) -> list[str]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.split()[1:]
    raise AssertionError(f"the worker did not say {prefix!r} (exit code {process.poll()})")


def _crash_a_worker(sim: Simulator, base_url: str, persistent_url: str) -> tuple[list[int], list[int]]:
    """Run a worker until it holds 4 numbers, 2 with their code, and 2 rents; then SIGKILL it."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_worker", base_url, persistent_url, "worker-1", "4", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        said = _read_line(worker, "BOUGHT")
        ids = [int(i) for i in said[:said.index("RENTED")]]
        rents = [int(i) for i in said[said.index("RENTED") + 1:]]
        for activation_id in ids[:2]:
            sim.deliver_sms(activation_id, f"Your code is {activation_id % 100000:05d}")
        _read_line(worker, "CODES")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        if worker.stdout is not None:
            worker.stdout.close()
    assert worker.returncode == -signal.SIGKILL
    return ids, rents


@pytest.mark.slow
async def test_sigkilled_workers_numbers_are_closed_by_a_survivor(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    with serve_in_thread(sim) as base_url:
        ids, rents = await anyio.to_thread.run_sync(_crash_a_worker, sim, base_url, persistent_url)
        assert [sim.activations[i].state.active for i in ids] == [True] * 4  # the dead worker closed nothing
        assert [sim.rents[i].state for i in rents] == ["active"] * 2

        async with SMSActivate(sim.api_key, base_url=base_url, store=persistent_url, owner="survivor",
                               rate_limit=None) as survivor:
            early = await survivor.recover()
            assert early.finished == early.cancelled == []  # the worker's lease (1 s) has not expired yet
            await anyio.sleep(1.2)
            report = await survivor.recover()
    assert sorted(report.finished) == sorted(ids[:2])
    assert sorted(report.cancelled) == sorted(ids[2:]) and report.pending == []
    assert [sim.activations[i].state for i in ids] == [ActivationState.FINISHED] * 2 + [ActivationState.CANCELLED] * 2
    assert sim.open_activations() == []
    assert sorted(report.rents_cancelled) == sorted(rents)  # within 20 minutes: refunded
    assert [sim.rents[i].state for i in rents] == ["cancelled"] * 2
