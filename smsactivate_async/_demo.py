"""``python -m smsactivate_async demo``: the simulator on a loopback port, the real client over
real HTTP, many activations at once, live progress and a summary."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import anyio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ._buying import BuyingPolicy
from ._client import SMSActivate
from ._exceptions import SMSActivateError
from ._policy import RetryPolicy
from .simulator import CodeSchedule, Faults, Simulator, serve_in_thread

__all__ = ["run_demo"]


class _Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.bought = self.waiting = self.codes = self.finished = self.cancelled = self.failed = 0
        self.started = time.perf_counter()

    def table(self, client: SMSActivate, sim: Simulator) -> Table:
        table = Table(title=f"smsactivate_async demo: {self.total} activations")
        table.add_column("", style="bold")
        table.add_column("count", justify="right")
        faults = sum(1 for r in sim.ledger.requests if r.fault)
        rows = [("bought", self.bought), ("waiting for a code", self.waiting), ("codes received", self.codes),
                ("finished", self.finished), ("cancelled", self.cancelled), ("failed", self.failed),
                ("price steps (buying policy)", client.stats.price_steps),
                ("fallbacks to another country", client.stats.fallbacks),
                ("requests sent", client.stats.requests), ("retries", client.stats.retries),
                ("429s", client.stats.rate_limited), ("lost answers reconciled", client.stats.reconciliations),
                ("faults injected", faults), ("seconds", f"{time.perf_counter() - self.started:.1f}")]
        for name, value in rows:
            table.add_row(name, str(value))
        return table


def run_demo(*, activations: int, provider: str, faults: float, seed: int) -> None:
    console = Console()
    sim = Simulator(
        provider=provider,
        codes=CodeSchedule.within(0.5, 4.0),
        early_cancel_seconds=2.0,
        # The demo's random 429s are faults to recover from, not HeroSMS's 10 s budget block: they say
        # how long to wait (Retry-After 0.5 s) in every dialect, or each would hold the client 10 s.
        faults=Faults.uniform(faults, retry_after=0.5, hang_seconds=3.0, retry_after_header=True),
        api_keys={"demo-key": Decimal(1_000_000)},
        seed=seed,
    )
    # A market for the buying policy: Kazakhstan (2) sells a third of what is asked, above the first
    # offer; the policy steps up to the minimum within its ceiling, then falls back to 6 and 16.
    sim.set_stock("tg", 2, max(1, activations // 3))
    sim.set_price("tg", 2, "0.20")
    progress = _Progress(activations)
    with serve_in_thread(sim) as url:
        console.print(f"Simulator ({provider}) serving {url}")
        anyio.run(_run, sim, url, provider, progress, console)
    console.print(f"Open activations left on the server: {len(sim.open_activations())}; "
                  f"balance {sim.balance('demo-key')} = start - {sim.ledger.spent()} + {sim.ledger.refunded()} refunds")


async def _run(sim: Simulator, url: str, provider: str, progress: _Progress, console: Console) -> None:
    client = SMSActivate(
        "demo-key", provider=provider, base_url=url, poll_interval=0.5, early_cancel_window=2.0, timeout=2.0,
        rate_limit=200, burst=20, retry=RetryPolicy(attempts=6, base_delay=0.05, max_delay=1.0),
    )

    done = anyio.Event()
    policy = BuyingPolicy(max_price="0.15", ceiling="0.50", fallbacks=[6, 16])

    async def one() -> None:
        try:
            async with client.activation(service="tg", country=2, policy=policy) as act:
                progress.bought += 1
                progress.waiting += 1
                try:
                    await act.wait_for_code(timeout=30)
                    progress.codes += 1
                finally:
                    progress.waiting -= 1
            progress.finished += 1 if act.codes else 0
            progress.cancelled += 0 if act.codes else 1
        except SMSActivateError as error:
            progress.failed += 1
            console.log(f"[red]{error}[/red]")
        if progress.finished + progress.cancelled + progress.failed == progress.total:
            done.set()

    async with client:
        with Live(progress.table(client, sim), console=console, refresh_per_second=8) as live:
            async with anyio.create_task_group() as group:
                for _ in range(progress.total):
                    group.start_soon(one)

                async def refresh() -> Any:
                    while True:
                        live.update(progress.table(client, sim))
                        await anyio.sleep(0.125)

                group.start_soon(refresh)
                await done.wait()
                group.cancel_scope.cancel()
            live.update(progress.table(client, sim))
