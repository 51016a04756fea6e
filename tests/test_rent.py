"""Rent waits (issue 42): a cursor per rent — every message handed over once, oldest first, whoever
waits, however many arrive at once, across a restart — and one poller whose cost is one getRentStatus
per waited rent per ``rent_poll_interval``, not one per waiter."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import anyio
import pytest

from smsactivate_async import (
    ActivationStateError,
    ClientClosedError,
    InvalidArgumentError,
    RentNotFoundError,
    SMSActivate,
    WaitTimeoutError,
)
from smsactivate_async._store_sqlite import SqliteStore
from smsactivate_async.simulator import CodeSchedule, LoopSimClock, Simulator

from .conftest import VirtualWall, on_virtual_time

pytestmark = pytest.mark.anyio


def make(*, interval: float = 10.0, **options: Any) -> tuple[Simulator, SMSActivate]:
    sim = Simulator(codes=CodeSchedule.never(), clock=LoopSimClock(), rent_cancel_seconds=1200)
    client = SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, rent_poll_interval=interval,
                         **options)
    return sim, client


@on_virtual_time()
async def test_many_waiters_on_one_rent_cost_one_request_per_interval() -> None:
    """Ten waits on each of five rents for 100 s at a 10 s interval: about 5 × 10 getRentStatus (the
    old way, one loop per waiter, cost ten times that), and every message still reaches one waiter."""
    sim, client = make(interval=10.0)
    async with client:
        rents = [(await client.get_rent_number(service="tg", rent_time=4)).id for _ in range(5)]
        got: dict[int, list[str]] = {rent: [] for rent in rents}
        before = sim.ledger.requests_for("getRentStatus")

        async def wait(rent: int) -> None:
            try:
                got[rent].append((await client.wait_for_rent_sms(rent, timeout=100)).text or "")
            except WaitTimeoutError:
                pass

        async with anyio.create_task_group() as group:
            for rent in rents:
                for _ in range(10):
                    group.start_soon(wait, rent)
            for second in range(1, 6):
                await anyio.sleep(15)
                for rent in rents:
                    sim.deliver_rent_sms(rent, f"{rent}-{second}")
        polls = sim.ledger.requests_for("getRentStatus") - before
    assert polls == client._rents.polls
    assert polls <= 5 * (100 // 10 + 2), polls
    for rent in rents:  # each message to one waiter, oldest first
        assert got[rent] == [f"{rent}-{second}" for second in range(1, 6)]


@on_virtual_time()
async def test_a_message_that_came_while_nobody_waited_or_in_a_burst_is_handed_over_in_order() -> None:
    sim, client = make(interval=5.0)
    async with client:
        rent = (await client.get_rent_number(service="tg", rent_time=4)).id
        for i in range(25):  # more than one page (the provider's default page is 10)
            sim.deliver_rent_sms(rent, f"m{i}")
        texts = [(await client.wait_for_rent_sms(rent, timeout=30)).text for _ in range(25)]
        assert texts == [f"m{i}" for i in range(25)]
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_rent_sms(rent, timeout=12)


@pytest.mark.parametrize("seed", range(12))
@on_virtual_time()
async def test_random_waiters_cancelled_and_timing_out_lose_no_message(seed: int) -> None:
    """Seeded random schedules: waiters that come and go, time out, are cancelled just as their message
    is fetched; messages one by one and in bursts, some while nobody waits. Every message is handed
    over exactly once, in order — what no waiter took is handed over by a final drain."""
    rng = random.Random(seed)
    sim, client = make(interval=rng.choice([1.0, 3.0, 7.0]))
    async with client:
        rent = (await client.get_rent_number(service="tg", rent_time=4)).id
        handed: list[str] = []
        sent: list[str] = []

        async def waiter(index: int) -> None:
            await anyio.sleep(rng.uniform(0, 60))
            with anyio.move_on_after(rng.choice([0.5, 2.0, 9.0, 30.0]) if rng.random() < 0.4 else float("inf")):
                try:
                    message = await client.wait_for_rent_sms(rent, timeout=rng.uniform(1, 40))
                except WaitTimeoutError:
                    # never while a message fetched for the rent sat waiting to be handed over
                    assert not client._rents._tracks[rent].ready, f"seed {seed}: timed out next to a message"
                    return
                handed.append(message.text or "")

        async def sender() -> None:
            for burst in range(rng.randrange(5, 15)):
                await anyio.sleep(rng.expovariate(1 / 6))
                for i in range(rng.choice([1, 1, 2, 5, 12])):
                    sent.append(f"b{burst}-{i}")
                    sim.deliver_rent_sms(rent, sent[-1])

        async with anyio.create_task_group() as group:
            group.start_soon(sender)
            for index in range(rng.randrange(5, 40)):
                group.start_soon(waiter, index)
        while len(handed) < len(sent):
            handed.append((await client.wait_for_rent_sms(rent, timeout=30)).text or "")
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_rent_sms(rent, timeout=10)
    assert handed == sent, f"seed {seed}"


@on_virtual_time()
async def test_the_cursor_survives_a_restart_with_a_journal(tmp_path: Path) -> None:
    """A service bought a rent, handed over two of three messages, was redeployed; the new process
    (same owner, same journal) hands over the third, then the ones that came while it was down —
    none twice, none skipped."""
    sim = Simulator(codes=CodeSchedule.never(), clock=LoopSimClock(), rent_cancel_seconds=1200)
    wall = VirtualWall()

    def client() -> SMSActivate:
        return SMSActivate(sim.api_key, transport=sim.transport(), owner="svc", lease=30.0, clock=wall,
                           store=SqliteStore(tmp_path / "journal.db", wall=wall.wall, threaded=False),
                           rate_limit=None, rent_poll_interval=5.0)

    async with client() as first:
        rent = (await first.get_rent_number(service="tg", rent_time=4)).id
        for text in ("one", "two", "three"):
            sim.deliver_rent_sms(rent, text)
        assert [(await first.wait_for_rent_sms(rent, timeout=10)).text for _ in range(2)] == ["one", "two"]
    sim.deliver_rent_sms(rent, "four")  # while no process runs
    await anyio.sleep(60)
    async with client() as second:
        texts = [(await second.wait_for_rent_sms(rent, timeout=10)).text for _ in range(2)]
        assert texts == ["three", "four"]
        with pytest.raises(WaitTimeoutError):
            await second.wait_for_rent_sms(rent, timeout=12)
    assert sim.rents[rent].state == "active"  # a redeploy never closes a rent paid for hours


@on_virtual_time()
async def test_closing_the_client_ends_rent_waits_and_keeps_the_rent() -> None:
    sim, client = make(interval=5.0)
    await client.__aenter__()
    rent = (await client.get_rent_number(service="tg", rent_time=4)).id
    caught: list[BaseException] = []

    async def wait() -> None:
        try:
            await client.wait_for_rent_sms(rent, timeout=300)
        except ClientClosedError as exc:
            caught.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        group.start_soon(wait)
        await anyio.sleep(20)
        await client.aclose()
    assert len(caught) == 2 and "stays open" in str(caught[0])
    assert sim.rents[rent].state == "active"


@on_virtual_time()
async def test_a_rent_that_ends_ends_its_waits_and_a_wrong_id_is_a_rent_error() -> None:
    sim, client = make(interval=5.0)
    async with client:
        rent = (await client.get_rent_number(service="tg", rent_time=4)).id
        sim.deliver_rent_sms(rent, "last words")
        assert (await client.wait_for_rent_sms(rent, timeout=10)).text == "last words"
        caught: list[BaseException] = []

        async def wait() -> None:
            with pytest.raises(ActivationStateError) as info:
                await client.wait_for_rent_sms(rent, timeout=100)
            caught.append(info.value)

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            group.start_soon(wait)
            await anyio.sleep(7)
            sim.rents[rent].state = "finished"  # finished elsewhere (another process, the site)
        assert len(caught) == 2 and anyio.current_time() < 30
        assert rent not in client._rents._tracks  # an ended rent is forgotten: a service lives for months
        with pytest.raises(RentNotFoundError):
            await client.wait_for_rent_sms(987654, timeout=10, since="all")
        assert 987654 not in client._rents._tracks


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "10", True])
def test_rent_poll_interval_is_checked_before_anything_is_sent(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="rent_poll_interval"):
        SMSActivate("k" * 32, rent_poll_interval=bad)


@on_virtual_time()
async def test_a_push_polls_a_waited_rent_at_once() -> None:
    sim, client = make(interval=600.0)
    async with client:
        rent = (await client.get_rent_number(service="tg", rent_time=4)).id
        async with anyio.create_task_group() as group:
            async def later() -> None:
                await anyio.sleep(30)
                sim.deliver_rent_sms(rent, "pushed")
                client.notify_rent(rent)

            group.start_soon(later)
            started = anyio.current_time()
            message = await client.wait_for_rent_sms(rent, timeout=500)
        assert message.text == "pushed" and anyio.current_time() - started < 31


@on_virtual_time()
async def test_a_waiter_cancelled_as_its_message_came_passes_it_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poller woke the first waiter for a message and the waiter was cancelled before it took it:
    the message goes to the next waiter at once, not at the next poll nor after its timeout."""
    import smsactivate_async._rent as rent_module

    sim, client = make(interval=5.0)
    first = anyio.CancelScope()
    woken = rent_module._wake_next

    def wake_and_cancel_the_first(track: Any) -> None:
        woken(track)
        first.cancel()

    async with client:
        rent = (await client.get_rent_number(service="tg", rent_time=4)).id
        got: list[str | None] = []
        started = anyio.current_time()

        async def cancelled_one() -> None:
            with first:
                got.append(f"first: {(await client.wait_for_rent_sms(rent, timeout=100)).text}")

        async def next_one() -> None:
            got.append(f"next: {(await client.wait_for_rent_sms(rent, timeout=4)).text}")

        async with anyio.create_task_group() as group:
            group.start_soon(cancelled_one)
            await anyio.sleep(1)
            group.start_soon(next_one)
            await anyio.sleep(1)
            monkeypatch.setattr(rent_module, "_wake_next", wake_and_cancel_the_first)
            sim.deliver_rent_sms(rent, "only")
            client.notify_rent(rent)
        assert got == ["next: only"] and first.cancel_called
        assert anyio.current_time() - started < 2.5  # at once, not when its own timeout came


@on_virtual_time()
async def test_a_message_between_the_two_requests_of_a_poll_is_not_stepped_over() -> None:
    """Harness seed 734: twelve messages came at once (more than the first page shows); the poll asked
    for a page of twelve, and a thirteenth came between the two requests. The second answer showed the
    newest twelve of thirteen: the oldest was taken for one beyond any page and skipped. Now the poll
    asks again for a page that holds them all."""
    import httpx

    sim = Simulator(codes=CodeSchedule.never(), clock=LoopSimClock(), rent_cancel_seconds=1200)
    inner = sim.transport()
    rent_box: list[int] = []

    class OneMoreBetween(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await inner.handle_async_request(request)
            params = request.url.params
            if params.get("action") == "getRentStatus" and "size" not in params and rent_box:
                sim.deliver_rent_sms(rent_box.pop(), "came between")
            return response

    async with SMSActivate(sim.api_key, transport=OneMoreBetween(), rate_limit=None, rent_poll_interval=5.0) as client:
        rent = (await client.get_rent_number(service="tg", rent_time=4)).id
        for i in range(12):
            sim.deliver_rent_sms(rent, f"m{i}")
        rent_box.append(rent)
        texts = [(await client.wait_for_rent_sms(rent, timeout=10)).text for _ in range(13)]
    assert texts == [*(f"m{i}" for i in range(12)), "came between"]


@on_virtual_time()
async def test_an_extension_under_four_hours_is_refused_before_it_is_sent_and_by_the_simulator() -> None:
    """[DOC 000 continueRentNumber] INVALID_TIME: "Available number of hours from 4 to 1344"."""
    import httpx

    sim, client = make()
    async with client:
        rent = (await client.get_rent_number(service="tg", rent_time=4)).id
        before = len(sim.ledger.requests)
        for call in (client.continue_rent_number(rent, rent_time=3),
                     client.get_continue_rent_price_number(rent, rent_time=3)):
            with pytest.raises(InvalidArgumentError, match="rent_time"):
                await call
        assert len(sim.ledger.requests) == before  # nothing sent
        assert (await client.continue_rent_number(rent, rent_time=4)).id == rent
    async with httpx.AsyncClient(transport=sim.transport(), base_url="http://sim") as http:
        answer = await http.get("/stubs/handler_api.php", params={
            "api_key": sim.api_key, "action": "continueRentNumber", "id": str(rent), "rent_time": "3"})
    assert "INVALID_TIME" in answer.text


@on_virtual_time()
async def test_a_flood_of_pushes_costs_one_poll_a_second_at_most() -> None:
    """A hostile request (a forged or repeated push, a thousand of them) must not spend the account's
    budget: pushes for a waited rent poll it at once, but at most once a second; a real push among
    them still brings its message within that second."""
    sim, client = make(interval=600.0)
    async with client:
        rent = (await client.get_rent_number(service="tg", rent_time=4)).id
        got: list[str | None] = []
        async with anyio.create_task_group() as group:
            async def wait() -> None:
                got.append((await client.wait_for_rent_sms(rent, timeout=500)).text)

            group.start_soon(wait)
            await anyio.sleep(0.5)
            before = sim.ledger.requests_for("getRentStatus")
            for _ in range(1000):  # ten seconds of forged pushes, a hundred a second
                client.notify_rent(rent)
                await anyio.sleep(0.01)
            assert sim.ledger.requests_for("getRentStatus") - before <= 11
            sim.deliver_rent_sms(rent, "real")
            client.notify_rent(rent)
            pushed_at = anyio.current_time()
        assert got == ["real"] and anyio.current_time() - pushed_at <= 1.0
