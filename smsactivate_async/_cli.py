"""The ``smsactivate`` command line (click + rich, from the ``cli`` extra).

Real accounts: ``smsactivate balance`` with ``--api-key`` or ``SMSACTIVATE_API_KEY``.
No account needed: ``smsactivate demo`` and ``smsactivate simulate``.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import anyio
import attrs

from ._exceptions import (
    AuthenticationError,
    BadResponseError,
    InsufficientBalanceError,
    InvalidArgumentError,
    NoNumbersError,
    SMSActivateError,
    TransportError,
    WaitTimeoutError,
)
from ._providers import PROVIDERS

try:
    import click
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover - the message below is the behaviour
    sys.exit("the command line needs its extra: pip install 'smsactivate-async[cli]'")

__all__ = ["main"]

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)

#: exit codes per error family (documented in the README)
EXIT_CODES: list[tuple[type[SMSActivateError], int]] = [
    (InvalidArgumentError, 2),
    (AuthenticationError, 3),
    (InsufficientBalanceError, 4),
    (NoNumbersError, 5),
    (WaitTimeoutError, 6),
    (TransportError, 7),
    (BadResponseError, 8),
    (SMSActivateError, 1),
]


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


class Context:
    def __init__(self, api_key: str | None, provider: str, base_url: str | None, as_json: bool) -> None:
        self.api_key = api_key
        self.provider = provider
        self.base_url = base_url
        self.as_json = as_json

    def run(self, work: Callable[[Any], Awaitable[T]], *, record: str | None = None) -> T:
        from ._client import SMSActivate

        if not self.api_key:
            raise click.UsageError("an API key is needed: --api-key or SMSACTIVATE_API_KEY (or try `smsactivate demo`)")

        async def go() -> T:
            # A command ends when its numbers are closed: it waits out an early-cancel window (the
            # provider's, plus a margin) rather than leave a number open behind the user.
            async with SMSActivate(self.api_key or "", provider=self.provider, base_url=self.base_url,
                                   close_timeout=330.0, record=record) as client:
                return await work(client)

        try:
            return anyio.run(go)
        except SMSActivateError as error:
            code = next(c for cls, c in EXIT_CODES if isinstance(error, cls))
            if self.as_json:
                click.echo(json.dumps({"error": error.code, "message": str(error)}))
            else:
                err_console.print(f"[red]error[/red] {error}")
            sys.exit(code)

    def show(self, value: Any, columns: list[str] | None = None, rows: list[list[Any]] | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps(_plain(value), ensure_ascii=False))
            return
        if columns is None or rows is None:
            console.print(value)
            return
        table = Table(*columns)
        for row in rows:
            table.add_row(*[str(cell) if cell is not None else "" for cell in row])
        console.print(table)


pass_context = click.make_pass_decorator(Context)


@click.group()
@click.option("--api-key", envvar="SMSACTIVATE_API_KEY", help="API key (or SMSACTIVATE_API_KEY).")
@click.option("--provider", default="sms-activate", show_default=True, type=click.Choice(list(PROVIDERS)))
@click.option("--base-url", default=None, help="Full handler URL of a compatible provider.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.version_option(package_name="smsactivate-async")
@click.pass_context
def cli(ctx: click.Context, api_key: str | None, provider: str, base_url: str | None, as_json: bool) -> None:
    """Rent numbers and receive codes from SMS-Activate-compatible providers."""
    ctx.obj = Context(api_key, provider, base_url, as_json)


@cli.command()
@pass_context
def balance(ctx: Context) -> None:
    """Show the account balance."""
    value = ctx.run(lambda c: c.get_balance())
    ctx.show({"balance": value} if ctx.as_json else f"Balance: [bold]{value}[/bold]")


@cli.command()
@click.option("--service")
@click.option("--country", type=int)
@pass_context
def prices(ctx: Context, service: str | None, country: int | None) -> None:
    """Prices and stock by country and service."""
    table = ctx.run(lambda c: c.get_prices(service=service, country=country))
    rows = [[cid, svc, p.cost, p.count] for cid, services in table.items() for svc, p in services.items()]
    ctx.show(table, ["country", "service", "cost", "count"], rows)


@cli.command()
@pass_context
def countries(ctx: Context) -> None:
    """Country ids and names."""
    result = ctx.run(lambda c: c.get_countries())
    ctx.show(result, ["id", "name", "rent", "multi-service"],
             [[c.id, c.eng, c.rent, c.multi_service] for c in result.values()])


@cli.command()
@click.option("--country", type=int)
@pass_context
def services(ctx: Context, country: int | None) -> None:
    """Service codes and names."""
    result = ctx.run(lambda c: c.get_services_list(country=country))
    ctx.show(result, ["code", "name"], [[s.code, s.name] for s in result])


@cli.command()
@click.option("--service", required=True)
@click.option("--country", type=int, default=None)
@click.option("--max-price", default=None)
@click.option("--wait", is_flag=True, help="Wait for the code, then finish (or cancel on timeout).")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait with --wait.")
@pass_context
def buy(ctx: Context, service: str, country: int | None, max_price: str | None, wait: bool, timeout: float) -> None:
    """Buy a number (and with --wait, its code)."""

    async def work(client: Any) -> dict[str, Any]:
        if not wait:
            number = await client.get_number_v2(service=service, country=country, max_price=max_price)
            return {"activation_id": number.activation_id, "phone_number": number.phone_number,
                    "cost": number.activation_cost}
        async with client.activation(service=service, country=country, max_price=max_price) as act:
            if not ctx.as_json:
                console.print(f"Number [bold]{act.phone_number}[/bold] (activation {act.activation_id}); waiting…")
            code = await act.wait_for_code(timeout=timeout)
            return {"activation_id": act.activation_id, "phone_number": act.phone_number, "cost": act.cost, "code": code}

    result = ctx.run(work)
    ctx.show(result, ["activation", "phone", "cost", "code"],
             [[result["activation_id"], result["phone_number"], result["cost"], result.get("code")]])


@cli.command()
@click.argument("activation_id", type=int)
@pass_context
def status(ctx: Context, activation_id: int) -> None:
    """An activation's state and code."""
    result = ctx.run(lambda c: c.get_status(activation_id))
    ctx.show(result, ["status", "code"], [[result.status.value, result.code]])


def _set_status(ctx: Context, activation_id: int, status: int | None) -> None:
    result = ctx.run(lambda c: c.set_status(activation_id, c.provider.cancel_status if status is None else status))
    ctx.show({"result": result.value} if ctx.as_json else result.value)


@cli.command()
@click.argument("activation_id", type=int)
@pass_context
def cancel(ctx: Context, activation_id: int) -> None:
    """Cancel an activation (status 8, or the provider's cancel status)."""
    _set_status(ctx, activation_id, None)


@cli.command()
@click.argument("activation_id", type=int)
@pass_context
def finish(ctx: Context, activation_id: int) -> None:
    """Finish an activation (status 6)."""
    _set_status(ctx, activation_id, 6)


@cli.group()
def rent() -> None:
    """Rent numbers."""


@rent.command("buy")
@click.option("--service", required=True)
@click.option("--hours", "rent_time", type=int, default=4, show_default=True)
@click.option("--country", type=int, default=None)
@pass_context
def rent_buy(ctx: Context, service: str, rent_time: int, country: int | None) -> None:
    """Rent a number."""
    result = ctx.run(lambda c: c.get_rent_number(service=service, rent_time=rent_time, country=country))
    ctx.show(result, ["rent", "number", "ends"], [[result.id, result.number, result.end_date]])


@rent.command("status")
@click.argument("rent_id", type=int)
@pass_context
def rent_status(ctx: Context, rent_id: int) -> None:
    """A rent's messages."""
    result = ctx.run(lambda c: c.get_rent_status(rent_id))
    ctx.show(result, ["from", "text", "date"], [[m.phone_from, m.text, m.date] for m in result.values])


@rent.command("wait")
@click.argument("rent_id", type=int)
@click.option("--timeout", default=600.0, show_default=True)
@pass_context
def rent_wait(ctx: Context, rent_id: int, timeout: float) -> None:
    """Wait for the next message on a rent."""
    result = ctx.run(lambda c: c.wait_for_rent_sms(rent_id, timeout=timeout))
    ctx.show(result, ["from", "text", "date"], [[result.phone_from, result.text, result.date]])


def _set_rent_status(ctx: Context, rent_id: int, status: int, done: str) -> None:
    ctx.run(lambda c: c.set_rent_status(rent_id, status))
    ctx.show({"result": done} if ctx.as_json else done)


@rent.command("finish")
@click.argument("rent_id", type=int)
@pass_context
def rent_finish(ctx: Context, rent_id: int) -> None:
    """Finish a rent."""
    _set_rent_status(ctx, rent_id, 1, "finished")


@rent.command("cancel")
@click.argument("rent_id", type=int)
@pass_context
def rent_cancel(ctx: Context, rent_id: int) -> None:
    """Cancel a rent (within 20 minutes)."""
    _set_rent_status(ctx, rent_id, 2, "cancelled")


@cli.command()
@click.option("--port", default=8765, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--provider", "--dialect", "provider", default="sms-activate", type=click.Choice(list(PROVIDERS)),
              show_default=True, help="Whose server it plays (a preset's name; --dialect is its former name).")
@click.option("--faults", default=0.0, show_default=True, help="Share of requests that get a fault.")
@click.option("--rps", default=None, type=float, help="Requests per second per key before 429.")
@click.option("--block", "block_seconds", default=None, type=float,
              help="Going over --rps blocks the key this long, re-started by requests during it (HeroSMS: 10).")
@click.option("--seed", default=0, show_default=True)
@click.option("--api-key", "keys", multiple=True, default=["test-key"], show_default=True, help="Accepted key(s).")
@click.option("--codes", default="5:60", show_default=True, help="Codes arrive within LOW:HIGH seconds ('never': by hand).")
@click.option("--balance", default="1000", show_default=True, help="Starting balance of each key.")
@click.option("--early-cancel", "early_cancel_seconds", default=None, type=float,
              help="Seconds after purchase during which a cancel is refused (default: the dialect's, 120).")
@click.option("--lifetime", "lifetime_seconds", default=1200.0, show_default=True, type=float,
              help="An activation's life; without a code it is refunded.")
@click.option("--rent-cancel", "rent_cancel_seconds", default=1200.0, show_default=True, type=float,
              help="How long a rent may be cancelled.")
@click.option("--rent-sms", default="never", show_default=True,
              help="SMS on each rent: every SECONDS, or LOW:HIGH seconds apart at random ('never': by hand).")
@click.option("--rent-sms-burst", default=1, show_default=True, type=int, help="Rent SMS that come at once.")
@click.option("--rent-sms-count", default=None, type=int, help="At most this many SMS per rent (default: until it ends).")
@click.option("--webhook-url", default=None, help="POST each incoming SMS here (the service under test).")
@click.option("--webhook-retries", default=None, type=int, help="Tries per push in all (default: the dialect's, 8).")
@click.option("--webhook-retry-delay", default=None, type=float, help="Seconds between tries (default: the dialect's).")
@click.option("--webhook-duplicates", "webhook_duplicate_rate", default=0.0, show_default=True, type=float,
              help="Share of pushes sent twice.")
@click.option("--webhook-timeout", default=3.0, show_default=True, type=float, help="How long a try waits for the 200.")
@click.option("--webhook-drops", "webhook_drop_rate", default=0.0, show_default=True, type=float,
              help="Share of tries lost on the way.")
@click.option("--webhook-reorder", default=0.0, show_default=True, type=float,
              help="Each try leaves up to this many seconds late, at random.")
@click.option("--status-v2-shape", default="live", show_default=True, type=click.Choice(["live", "spec"]),
              help="HeroSMS getStatusV2: the live capture's shape or the spec's.")
@click.option("--herosms-number-v2", default="live", show_default=True, type=click.Choice(["live", "spec"]),
              help="HeroSMS getNumberV2: live 'Y-m-d H:i:s' times, or the spec's RFC 3339 times with verificationType.")
@click.option("--herosms-accepts-ready/--herosms-refuses-ready", default=False, show_default=True,
              help="Whether HeroSMS takes setStatus 1 (its current spec lists only 3, 6, 8).")
@click.option("--key-balance", "key_balances", multiple=True, metavar="KEY=AMOUNT",
              help="A key with a balance of its own (repeatable; adds the key).")
@click.option("--catalogue", "catalogue_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="What is on sale: a JSON list of {service, country, price, count[, success_rate]} "
                   "(default: the dialect's built-in catalogue).")
@click.option("--fault", "fault_rates", multiple=True, metavar="KIND=RATE",
              help="The share of requests that get this fault (repeatable; with --faults, added to its shares). "
                   "Kinds: drop, timeout, html_5xx, truncate, rate_limit, error_sql, lost_purchase, late_purchase.")
@click.option("--inject", "injected", multiple=True, metavar="KIND[@ACTION][*N]",
              help="The next N requests (of ACTION, or any) get this fault, once, in order (repeatable).")
@click.option("--fault-actions", default=None, metavar="A,B", help="Rate faults only on these actions.")
@click.option("--truncate-at", default="18323", show_default=True,
              help="Where a truncated body is cut, in bytes ('fraction': at --truncate-fraction of it).")
@click.option("--truncate-fraction", default=0.5, show_default=True, type=float)
@click.option("--hang-seconds", default=30.0, show_default=True, type=float, help="How long a timeout fault holds.")
@click.option("--retry-after", default=1.0, show_default=True, type=float, help="Seconds a 429 asks for.")
@click.option("--retry-after-header/--no-retry-after-header", default=None,
              help="Whether 429s carry Retry-After (default: as the dialect's live 429 does).")
@click.option("--block-page", is_flag=True, help="Answer a block with the edge's 403 'error code: 1020' page.")
@click.option("--purchase-rps", default=None, type=float,
              help="Purchases per second per key, service and country before the edge's 429 (Tiger: 1).")
@click.option("--late-commit", "late_commit_seconds", default=30.0, show_default=True, type=float,
              help="How long a late_purchase stays out of the account's listings.")
def simulate(port: int, host: str, provider: str, faults: float, rps: float | None, block_seconds: float | None,
             seed: int, keys: list[str], codes: str, balance: str, rent_sms: str, rent_sms_burst: int,
             rent_sms_count: int | None, key_balances: tuple[str, ...], catalogue_file: str | None,
             fault_rates: tuple[str, ...], injected: tuple[str, ...], fault_actions: str | None, truncate_at: str,
             truncate_fraction: float, hang_seconds: float, retry_after: float, retry_after_header: bool | None,
             block_page: bool, purchase_rps: float | None, late_commit_seconds: float, **options: Any) -> None:
    """Serve the protocol simulator on a loopback port (every option of ``Simulator`` is here)."""
    from .simulator import CodeSchedule, FaultKind, Faults, RentSchedule, Simulator, serve

    try:
        if codes == "never":
            schedule = CodeSchedule.never()
        else:
            low, _, high = codes.partition(":")
            schedule = CodeSchedule.within(float(low), float(high or low))
        if rent_sms == "never":
            rents = RentSchedule.never()
        elif ":" in rent_sms:
            low, _, high = rent_sms.partition(":")
            rents = RentSchedule.within(float(low), float(high), burst=rent_sms_burst, count=rent_sms_count)
        else:
            rents = RentSchedule.periodic(float(rent_sms), burst=rent_sms_burst, count=rent_sms_count)
    except ValueError as exc:
        raise click.BadParameter(f"--codes / --rent-sms: {exc}") from None
    options["rent_sms"] = rents
    try:
        balances = {key: Decimal(balance) for key in keys}
        for pair in key_balances:
            key, sep, amount = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"--key-balance wants KEY=AMOUNT, got {pair!r}")
            balances[key] = Decimal(amount)
    except ArithmeticError:
        raise click.BadParameter("--balance / --key-balance: an amount such as 100 or 12.50") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    limits = Faults.uniform(faults, rps_budget=rps, block_seconds=block_seconds, truncate_fraction=truncate_fraction,
                            hang_seconds=hang_seconds, retry_after=retry_after, retry_after_header=retry_after_header,
                            block_page=block_page, purchase_rps=purchase_rps, late_commit_seconds=late_commit_seconds)
    try:
        limits.truncate_at = None if truncate_at == "fraction" else int(truncate_at)
        for pair in fault_rates:
            kind, sep, rate = pair.partition("=")
            if not sep:
                raise ValueError(f"--fault wants KIND=RATE, got {pair!r}")
            fault = FaultKind(kind)
            limits.rates[fault] = limits.rates.get(fault, 0.0) + float(rate)
        for spec in injected:
            head, _, times = spec.partition("*")
            kind, _, action = head.partition("@")
            limits.inject(kind, action=action or None, times=int(times) if times else 1)
        if fault_actions:
            limits.actions = frozenset(a.strip() for a in fault_actions.split(",") if a.strip())
        if catalogue_file is not None:
            options["catalogue"] = _read_catalogue(catalogue_file)
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise click.BadParameter(f"--fault / --inject / --truncate-at / --catalogue: {exc}") from None
    sim = Simulator(provider=provider, seed=seed, faults=limits,
                    api_keys=balances, codes=schedule, **options)
    console.print(f"Simulator ({provider}) on http://{host}:{port}/stubs/handler_api.php — keys: {', '.join(keys)}; "
                  f"its ledger on http://{host}:{port}/_simulator/ledger")
    # uvicorn stops on SIGTERM, then raises it again: by default that ends the process before the
    # ledger below is printed (a deploy, `docker stop`, a benchmark stopping its simulator)
    default_sigterm = (threading.current_thread() is threading.main_thread()
                       and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
    if default_sigterm:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        serve(sim, host=host, port=port)
    finally:  # what happened, for the operator of the run: requests, blocks, money
        if default_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        console.print_json(data=sim.ledger.summary())


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _read_catalogue(path: str) -> list[Any]:
    """``--catalogue FILE``: a JSON list of ``{service, country, price, count[, success_rate]}``."""
    from .simulator import CatalogueEntry

    with open(path, encoding="utf-8") as file:
        rows = json.load(file)
    if not isinstance(rows, list) or not rows:
        raise ValueError("the catalogue file holds a non-empty JSON list of entries")
    return [CatalogueEntry(service=str(row["service"]), country=int(row["country"]), price=Decimal(str(row["price"])),
                           count=int(row["count"]), success_rate=float(row.get("success_rate", 1.0)))
            for row in rows]


@cli.command()
@pass_context
def providers(ctx: Context) -> None:
    """The provider presets: dialect, base URL and limits (``--provider NAME`` picks one)."""
    rows = []
    for p in PROVIDERS.values():
        rate = "unpaced" if p.rate_limit is None else (
            f"adaptive {p.safe_rate:g}–{p.rate_ceiling:g}/s" if p.rate_limit == "adaptive" else f"{p.rate_limit:g}/s")
        rows.append({"name": p.name, "dialect": p.dialect, "base_url": p.base_url, "rate_limit": rate,
                     "early_cancel_window": p.early_cancel_window, "page_size": p.page_size,
                     "supports_ready": p.supports_ready, "honours_order_id": p.honours_order_id})
    ctx.show(rows, ["name", "dialect", "base URL", "rate limit", "early cancel", "page", "setStatus 1", "orderId"],
             [[r["name"], r["dialect"], r["base_url"], r["rate_limit"], f'{r["early_cancel_window"]:g} s',
               r["page_size"] or "all", "yes" if r["supports_ready"] else "no",
               "idempotent" if r["honours_order_id"] else "reconciled"] for r in rows])


@cli.command()
@click.option("--service", required=True)
@click.option("--country", type=int, default=None)
@click.option("-n", "--count", default=10, show_default=True, help="How many activations.")
@click.option("--concurrency", default=10, show_default=True)
@click.option("--max-price", default=None, help="Price offered first.")
@click.option("--ceiling", default=None, help="Never pay above this (WRONG_MAX_PRICE minimums within it are bought).")
@click.option("--free-price", is_flag=True, help="Step through the Free Price levels up to the ceiling.")
@click.option("--fallback", "fallbacks", type=int, multiple=True, help="Another country to try (repeatable).")
@click.option("--rank", default="listed", type=click.Choice(["listed", "price", "stock"]), show_default=True)
@click.option("--budget", default=None, help="Stop buying once this much is spent.")
@click.option("--stop-after-no-code", type=int, default=None, help="Stop after this many numbers in a row without a code.")
@click.option("--min-success-rate", type=float, default=None, help="Leave a country whose success rate falls under this.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for each code.")
@pass_context
def bulk(ctx: Context, service: str, country: int | None, count: int, concurrency: int, max_price: str | None,
         ceiling: str | None, free_price: bool, fallbacks: tuple[int, ...], rank: str, budget: str | None,
         stop_after_no_code: int | None, min_success_rate: float | None, timeout: float) -> None:
    """Run N activations under a buying policy: buy, wait for the code, finish (or cancel)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ._buying import BuyingPolicy, SpendingGuard

    async def work(client: Any) -> dict[str, Any]:
        guard = None
        if budget is not None or stop_after_no_code is not None or min_success_rate is not None:
            guard = SpendingGuard(budget=budget, max_no_code_streak=stop_after_no_code,
                                  min_success_rate=min_success_rate)
        policy = BuyingPolicy(max_price=max_price, ceiling=ceiling, free_price=free_price,
                              fallbacks=list(fallbacks) or None, rank=rank, guard=guard)  # type: ignore[arg-type]
        codes, errors, spent = 0, dict[str, int](), Decimal(0)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, disable=ctx.as_json) as progress:
            task = progress.add_task(f"{service}: 0 codes", total=count)
            async for result in client.run_many(count, service=service, country=country, policy=policy,
                                                concurrency=concurrency, timeout=timeout):
                if result.ok:
                    codes += 1
                else:
                    name = getattr(result.error, "code", type(result.error).__name__)
                    errors[name] = errors.get(name, 0) + 1
                if result.cost is not None:
                    spent += result.cost
                if ctx.as_json:
                    click.echo(json.dumps(_plain({"index": result.index, "activation_id": result.activation_id,
                                                  "phone": result.phone_number, "code": result.code,
                                                  "cost": result.cost, "country": result.country,
                                                  "error": None if result.error is None else str(result.error)})))
                progress.update(task, advance=1, description=f"{service}: {codes} codes")
        return {"codes": codes, "errors": errors, "spent": spent, "price_steps": client.stats.price_steps,
                "fallbacks": client.stats.fallbacks}

    summary = ctx.run(work)
    if not ctx.as_json:
        ctx.show(summary, ["codes", "errors", "spent", "price steps", "fallbacks"],
                 [[summary["codes"], ", ".join(f"{k} ×{v}" for k, v in summary["errors"].items()) or "none",
                   summary["spent"], summary["price_steps"], summary["fallbacks"]]])


@cli.command()
@click.option("--port", default=8080, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--path", default="/sms", show_default=True, help="Path prefix; the secret is appended.")
@click.option("--secret", envvar="SMSACTIVATE_WEBHOOK_SECRET", required=True,
              help="The unguessable path token (or SMSACTIVATE_WEBHOOK_SECRET).")
@click.option("--any-source", is_flag=True, help="Accept pushes from any address (not only the provider's).")
@pass_context
def webhook(ctx: Context, port: int, host: str, path: str, secret: str, any_source: bool) -> None:
    """Receive the provider's webhooks and print each push, confirmed with getStatus.

    To feed your own waiters, mount ``client.webhook_app()`` in the process that waits instead."""
    from .webhooks import WebhookEvent, serve

    async def work(client: Any) -> None:
        send, receive = anyio.create_memory_object_stream[WebhookEvent](1000)
        app = client.webhook_app(path, secret=secret, allowed_sources=None if any_source else "provider",
                                 on_event=send.send_nowait)
        err_console.print(f"Listening on {host}:{port}; register https://<your host>{app.path} with the provider")
        async with anyio.create_task_group() as group:
            group.start_soon(serve, app, host, port)
            async with receive:
                async for event in receive:
                    if event.kind == "activation":
                        try:
                            status = await client.get_status(event.id)
                            confirmed: Any = {"status": status.status.value, "code": status.code}
                        except SMSActivateError as error:
                            confirmed = {"error": error.code}
                    else:
                        confirmed = None
                    ctx.show({"kind": event.kind, "id": event.id, "pushed_code": event.code, "text": event.text,
                              "confirmed": confirmed})

    ctx.run(work)


@cli.command()
@click.option("--record", "record_path", default=None, type=click.Path(dir_okay=False),
              help="Also write every exchange to this file (JSON lines; key, phones and codes redacted).")
@click.option("--against", "recording", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Check a recording (SMSActivate(record=...)) instead of asking the provider.")
@pass_context
def doctor(ctx: Context, record_path: str | None, recording: str | None) -> None:
    """Check the provider against its preset with free requests only (never buys, never sets a status)."""
    from ._doctor import check_recording
    from ._providers import resolve_provider
    from ._record import load_recording

    async def work(client: Any) -> None:
        report = await client.doctor()
        _show_report(ctx, report)
        if not report.ok:
            raise SystemExit(1)

    if recording is not None:
        provider = resolve_provider(ctx.provider, ctx.base_url)

        async def offline() -> None:
            report = await check_recording(load_recording(recording), provider)
            _show_report(ctx, report)
            if not report.ok:
                raise SystemExit(1)

        anyio.run(offline)
        return
    ctx.run(work, record=record_path)


def _show_report(ctx: Context, report: Any) -> None:
    if ctx.as_json:
        # "dialect": the former name of "profile", kept for scripts that read it
        click.echo(json.dumps({"provider": report.provider, "profile": report.profile, "dialect": report.profile,
                               "ok": report.ok,
                          "best_fit": report.best_fit, "best_fit_differences": report.best_fit_differences,
                          "suggestion": report.suggestion, "unprobed": list(report.unprobed),
                          "findings": [attrs.asdict(f) for f in report.findings],
                          "observations": [attrs.asdict(o) for o in report.observations]}, ensure_ascii=False))
        return
    rows = [[o.probe, str(o.status), o.content_type or "", o.shape, o.code or "", f"{o.elapsed * 1000:.0f} ms"]
            for o in report.observations]
    table = Table(title=f"{report.provider}: answers (compared with the simulator's {report.profile!r} profile)")
    for column in ("probe", "status", "content type", "shape", "error code", "time"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if report.ok:
        console.print(f"[green]All {len(report.observations)} answers match the {report.provider!r} preset.[/green]")
        console.print("Not probed (free calls cannot show them): " + "; ".join(report.unprobed) + ".")
        return
    diff = Table(title=f"{len(report.findings)} differences from the preset")
    for column in ("probe", "field", "preset expects", "provider answered", "what to change"):
        diff.add_column(column, overflow="fold")
    for f in report.findings:
        diff.add_row(f.probe, f.field, f.expected, f.got, f.advice)
    console.print(diff)
    if report.suggestion:
        console.print(f"This server looks like [bold]{report.best_fit}[/bold]: {report.best_fit_differences} "
                      f"difference(s) with its profile. Try: {report.suggestion}")
    console.print("Report it with a recording: smsactivate doctor --record traffic.jsonl (keys, phones and codes "
                  "are redacted), attached to an issue.")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def _since(text: str, now: float) -> float:
    """``--since``: a duration back from now (``90s``, ``30m``, ``6h``, ``2d``) or an ISO time."""
    unit = _UNITS.get(text[-1:].lower())
    if unit is not None:
        try:
            return now - float(text[:-1]) * unit
        except ValueError:
            pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: write a duration (30m, 6h, 2d) or an ISO time "
                                 "(2026-12-06T09:00+00:00)", param_hint="--since") from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{text!r} names no time zone (add +00:00 or Z)", param_hint="--since")
    return when.timestamp()


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fleet_tables(view: Any) -> Any:
    from rich.console import Group

    owners = Table(title=f"Owners — {view.open_numbers} open, {view.suspended} suspended ({_when(view.at)})")
    for column in ("owner", "lease", "open activations", "open rents", "suspended"):
        owners.add_column(column)
    for owner in view.owners:
        if owner.lease_until is None:
            lease = "[red]none[/red]"
        elif owner.alive:
            lease = f"[green]alive[/green], {owner.lease_until - view.at:.0f} s left"
        else:
            lease = f"[red]expired[/red] {view.at - owner.lease_until:.0f} s ago"
        owners.add_row(owner.owner, lease, str(owner.open_activations), str(owner.open_rents), str(owner.suspended))
    parts: list[Any] = [owners]
    if view.oldest is not None:
        kind, ident, owner, age = view.oldest
        parts.append(f"Oldest open number: {kind} {ident} of {owner}, open {age / 60:.1f} min")
    else:
        parts.append("No open numbers.")
    spend = (f"Since {_when(view.since)}: {view.bought} bought, spent {view.spent}, refunded {view.refunded}, "
             f"net {view.spent - view.refunded}")
    parts.append(spend + (f" ({view.unpriced} of unknown price)" if view.unpriced else ""))
    recoveries = Table(title=f"Recoveries since {_when(view.since)} (newest last)")
    recoveries.add_column("when")
    recoveries.add_column("what", overflow="fold")
    for at, text in view.recoveries[-20:]:
        recoveries.add_row(_when(at), text)
    parts.append(recoveries if view.recoveries else "No recoveries.")
    return Group(*parts)


@cli.command()
@click.option("--store", "store_url", required=True, help="The journal: sqlite:///path/journal.db or redis://host:port/db.")
@click.option("--since", "since_text", default="24h", show_default=True,
              help="Spend and recoveries since: a duration (30m, 6h, 2d) or an ISO time.")
@click.option("--watch", is_flag=True, help="Keep the view live until Ctrl-C.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes with --watch.")
@pass_context
def fleet(ctx: Context, store_url: str, since_text: str, watch: bool, interval: float) -> None:
    """Show the account's fleet from its journal: owners and leases, open and suspended numbers, the
    oldest open number, recoveries, spend. Read-only: it changes no record, sends no request."""
    import pathlib
    import time

    from ._fleet_view import read_fleet
    from ._providers import resolve_provider
    from ._store import namespace_for, redact_url
    from ._stores import open_store

    if not ctx.api_key:
        raise click.UsageError("the account's key is needed to find its records (they are kept under a hash of it, "
                               "never sent): --api-key or SMSACTIVATE_API_KEY")
    if store_url.lower().startswith("sqlite:///") and not pathlib.Path(store_url[len("sqlite:///"):]).exists():
        raise click.UsageError(f"no journal at {redact_url(store_url)!r} (the console creates none)")
    if interval <= 0:
        raise click.BadParameter("must be positive", param_hint="--interval")
    _since(since_text, time.time())  # a bad --since is refused before the store is opened
    try:
        store = open_store(store_url)
    except SMSActivateError as error:
        raise click.UsageError(str(error)) from None
    namespace = namespace_for(resolve_provider(ctx.provider, ctx.base_url).name, ctx.api_key.strip())

    async def look() -> Any:
        now = time.time()
        return await read_fleet(store, now=now, since=_since(since_text, now))

    screen = Console()  # sized now (COLUMNS, the terminal), not when the module was imported

    async def go() -> None:
        await store.open(namespace)
        try:
            if not watch:
                view = await look()
                if ctx.as_json:
                    click.echo(json.dumps(view.as_dict()))
                else:
                    screen.print(_fleet_tables(view))
                return
            from rich.live import Live

            with Live(_fleet_tables(await look()), console=screen, refresh_per_second=4) as live:
                while True:
                    await anyio.sleep(interval)
                    live.update(_fleet_tables(await look()))
        finally:
            await store.aclose()

    try:
        anyio.run(go)
    except KeyboardInterrupt:
        pass
    except SMSActivateError as error:
        err_console.print(f"[red]error[/red] {error}")
        sys.exit(next(c for cls, c in EXIT_CODES if isinstance(error, cls)))


@cli.command()
@click.option("--activations", default=100, show_default=True)
@click.option("--provider", "--dialect", "provider", default="sms-activate", type=click.Choice(list(PROVIDERS)),
              show_default=True, help="Whose server the simulator plays (--dialect is its former name).")
@click.option("--faults", default=0.0, show_default=True, help="Share of requests that get a fault (0.1 = 10 %).")
@click.option("--seed", default=1, show_default=True)
def demo(activations: int, provider: str, faults: float, seed: int) -> None:
    """Run activations against the embedded simulator over real HTTP (no key, no network)."""
    from ._demo import run_demo

    run_demo(activations=activations, provider=provider, faults=faults, seed=seed)


def main() -> None:
    cli()
