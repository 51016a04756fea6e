"""Issue 43 item 4: ``smsactivate fleet`` shows what the journal holds — owners and leases, open and
suspended numbers, the oldest open one, recoveries, spend — and changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from smsactivate_async import SMSActivate
from smsactivate_async._cli import cli
from smsactivate_async._stores import open_store
from smsactivate_async.simulator import CodeSchedule, ManualClock, Simulator

pytestmark = pytest.mark.anyio


async def _fleet(api_key: str, url: str, *args: str) -> Result:
    # the command runs its own event loop: in a thread of its own, as from a shell
    return await anyio.to_thread.run_sync(
        lambda: CliRunner(env={"COLUMNS": "200"}).invoke(
            cli, ["--api-key", api_key, *args, "fleet", "--store", url, "--since", "1h"]))


async def _journal(url: str, api_key: str) -> dict[str, Any]:
    store = open_store(url)
    from smsactivate_async._store import namespace_for

    await store.open(namespace_for("sms-activate", api_key))
    try:
        return {"open": await store.open_entries(), "leases": await store.leases(), "notes": await store.notes(0)}
    finally:
        await store.aclose()


async def test_the_console_shows_what_the_journal_holds(persistent_url: str) -> None:
    clock = ManualClock()
    sim = Simulator(codes=CodeSchedule.never(), clock=clock, early_cancel_seconds=120)
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None, "poll_interval": 0.01,
                               "early_cancel_window": 120, "store": persistent_url}
    async with SMSActivate(sim.api_key, owner="dead", lease=0.2, **options) as dead:
        numbers = [await dead.get_number_v2(service="tg", country=0) for _ in range(3)]
        sim.deliver_sms(numbers[0].activation_id, "code 11111")
        assert await dead.wait_for_code(numbers[0].activation_id, timeout=5) == "11111"
    async with SMSActivate(sim.api_key, owner="web-1", suspend_on_close=True, **options) as web:
        handles = [await web.start_activation(service="tg", country=0, timeout=600) for _ in range(2)]
    await anyio.sleep(0.3)
    clock.advance(121)
    async with SMSActivate(sim.api_key, owner="survivor", **options) as survivor:
        report = await survivor.recover()
        kept = await survivor.get_number_v2(service="tg", country=0)  # open, its owner alive
        before = await _journal(persistent_url, sim.api_key)

        done = await _fleet(sim.api_key, persistent_url, "--json")
        assert done.exit_code == 0, done.output
        view = json.loads(done.output)
        refunded = sim.ledger.refunded()
        after = await _journal(persistent_url, sim.api_key)

        shown = await _fleet(sim.api_key, persistent_url)
        assert shown.exit_code == 0, shown.output
        clock.advance(121)
        await survivor.set_status(kept.activation_id, 8)
    assert len(report.finished) == 1 and len(report.cancelled) == 2

    assert view["open_numbers"] == len(before["open"]) == 3
    owners = {o["owner"]: o for o in view["owners"]}
    assert owners["web-1"]["open_activations"] == owners["web-1"]["suspended"] == 2
    assert owners["survivor"]["alive"] and owners["survivor"]["open_activations"] == 1
    assert "dead" not in owners or owners["dead"]["open_activations"] == 0
    assert view["suspended"] == 2
    assert view["oldest"]["id"] in {h.activation_id for h in handles}
    recoveries = [r["text"] for r in view["recoveries"]]
    assert len(recoveries) == 3 and all("of dead owner dead" in text for text in recoveries)
    assert sorted(text.rsplit(": ", 1)[1] for text in recoveries) == ["cancelled", "cancelled", "finished"]
    # what the account spent since: every purchase of the run, each at the price its answer named
    assert Decimal(view["spent"]) == sim.ledger.spent() and view["bought"] == len(sim.ledger.purchases) == 6
    assert Decimal(view["refunded"]) == refunded > 0
    # read-only: the journal is as it was
    assert [e.to_json() for e in after["open"]] == [e.to_json() for e in before["open"]]
    assert after["notes"] == before["notes"]
    # the screen: owners, the oldest number, recoveries; no phone number
    for text in ("web-1", "survivor", "Oldest open number", "of dead owner dead", "spent"):
        assert text in shown.output
    for number in [*numbers, kept]:
        assert number.phone_number not in shown.output and number.phone_number not in done.output


async def test_the_console_refuses_what_it_cannot_read(tmp_path: Any) -> None:
    missing = f"sqlite:///{tmp_path}/nothing.db"
    done = await _fleet("k", missing)
    assert done.exit_code != 0 and "no journal at" in done.output
    assert not (tmp_path / "nothing.db").exists()  # it created none
    bad = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(
        cli, ["--api-key", "k", "fleet", "--store", missing, "--since", "yesterday"]))
    assert bad.exit_code != 0
    nokey = await anyio.to_thread.run_sync(lambda: CliRunner(env={"SMSACTIVATE_API_KEY": ""}).invoke(
        cli, ["fleet", "--store", missing]))
    assert nokey.exit_code != 0 and "key is needed" in nokey.output


async def test_watch_keeps_the_view_live_until_interrupted(tmp_path: Any) -> None:
    sim = Simulator(codes=CodeSchedule.never())
    url = f"sqlite:///{tmp_path}/journal.db"
    async with SMSActivate(sim.api_key, owner="w1", store=url, transport=sim.transport(), rate_limit=None,
                           suspend_on_close=True) as client:
        await client.start_activation(service="tg", country=0, timeout=600)
    out = await anyio.to_thread.run_sync(_watch_a_while, sim.api_key, url)
    assert "Owners — 1 open, 1 suspended" in out and "w1" in out


def _watch_a_while(api_key: str, url: str) -> str:
    # Ctrl-C's default for the child even when this process runs with SIGINT ignored (a test runner's
    # worker, mutmut's: the child inherited SIG_IGN and never stopped); 4 s: its start-up on a loaded machine
    watcher = subprocess.Popen(
        [sys.executable, "-m", "smsactivate_async", "--api-key", api_key, "fleet", "--store", url, "--watch",
         "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "150"}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(4.0)
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    return out
