"""A deploy of the FastAPI recipe, for real (issue 39): uvicorn in a subprocess with its default
settings, the simulator on a loopback port, SIGTERM with long polls in flight, a new process of the
same owner. Every caller's next poll gets its code; nothing is cancelled, nothing left open; the old
process exits within 10 s of SIGTERM; while it stops, a caller gets 503 with Retry-After, never a 500."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from smsactivate_async.simulator import ActivationState, CodeSchedule, Simulator
from smsactivate_async.simulator._transport import free_port, serve_in_thread

pytest.importorskip("fastapi")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@contextmanager
def _service(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "fastapi_service:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=EXAMPLES, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/numbers/1", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    failure = process.stderr.read().decode(errors="replace") if process.stderr else ""
                    raise RuntimeError(f"the service did not start: {failure}") from None
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_deploy_loses_no_paid_code(tmp_path: Path) -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=120)
    with serve_in_thread(sim) as base_url:
        env = {**os.environ, "SMSACTIVATE_API_KEY": sim.api_key, "SMSACTIVATE_BASE_URL": base_url,
               "SMSACTIVATE_STORE": f"sqlite:///{tmp_path / 'service.db'}", "SMSACTIVATE_OWNER": "web-1",
               "PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        answers: list[int] = []
        with _service(env, port) as old:
            orders = [httpx.post(f"{url}/numbers", json={"service": "tg", "country": 6}, timeout=10).json()
                      for _ in range(10)]
            assert all(o["state"] == "waiting" and o["phone"] for o in orders)
            early = orders[0]["id"]
            sim.deliver_sms(early, "code 100000", code="100000")  # one code before the deploy
            assert httpx.get(f"{url}/numbers/{early}/code", timeout=10).json()["code"] == "100000"

            def long_poll(activation_id: int) -> None:
                try:
                    answers.append(httpx.get(f"{url}/numbers/{activation_id}/code", timeout=15).status_code)
                except httpx.TransportError:
                    answers.append(0)

            polls = [threading.Thread(target=long_poll, args=(o["id"],)) for o in orders[1:]]
            for poll in polls:
                poll.start()
            time.sleep(0.5)
            stopped = time.monotonic()
            old.send_signal(signal.SIGTERM)  # the deploy, with uvicorn's defaults
            assert old.wait(timeout=15) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its graceful exit
            took = time.monotonic() - stopped
            for poll in polls:
                poll.join(timeout=10)
        assert took < 10.0, f"the old process took {took:.1f} s to exit"
        assert answers and all(status in (202, 503) for status in answers), answers  # never a 500
        waiting = [o["id"] for o in orders[1:]]
        assert all(sim.activations[i].state is ActivationState.WAIT_CODE for i in waiting)  # suspended, not cancelled

        # codes come while the service is down, and after it is back
        for activation_id in waiting[:5]:
            sim.deliver_sms(activation_id, f"code {activation_id % 1_000_000:06d}", code=f"{activation_id % 1_000_000:06d}")
        with _service(env, free_port()) as new:
            new_url = url.rsplit(":", 1)[0] + ":" + str(new.args[-1])  # type: ignore[index]
            for activation_id in waiting[5:]:
                sim.deliver_sms(activation_id, f"code {activation_id % 1_000_000:06d}",
                                code=f"{activation_id % 1_000_000:06d}")
            for activation_id in waiting:
                for _ in range(10):
                    answer = httpx.get(f"{new_url}/numbers/{activation_id}/code", timeout=15)
                    if answer.status_code == 200:
                        break
                assert answer.status_code == 200 and answer.json()["code"] == f"{activation_id % 1_000_000:06d}", \
                    answer.text
            new.send_signal(signal.SIGTERM)
            assert new.wait(timeout=15) in (0, -signal.SIGTERM)
    states = [sim.activations[o["id"]].state for o in orders]
    assert states == [ActivationState.FINISHED] * len(orders), states  # every code delivered, every number closed
    assert not sim.ledger.refunds  # nothing was cancelled
