"""Waiting: the scheduler, the activation state machine, timeouts, cancellation — on asyncio and trio."""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx
import pytest

from smsactivate_async import (
    ActivationCancelledError,
    HandleState,
    Provider,
    RetryPolicy,
    SMSActivate,
    WaitTimeoutError,
)
from smsactivate_async.simulator import ActivationState, CodeSchedule, Simulator

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


def make(dialect: str = "sms-activate", *, codes: CodeSchedule | None = None, early: float = 0.0,
         **client_options: Any) -> tuple[Simulator, SMSActivate]:
    sim = Simulator(provider=dialect, codes=codes or CodeSchedule.within(0.02, 0.3), early_cancel_seconds=early)
    options: dict[str, Any] = {"poll_interval": 0.03, "rent_poll_interval": 0.03, "early_cancel_window": early,
                               "rate_limit": None}
    options.update(client_options)
    client = SMSActivate(sim.api_key, provider=dialect, transport=sim.transport(), **options)
    return sim, client


@pytest.mark.parametrize(("dialect", "count"), [("sms-activate", 300), ("herosms", 250),
                                               pytest.param("sms-activate", 1000, marks=pytest.mark.slow)])
async def test_many_concurrent_activations(dialect: str, count: int) -> None:
    sim, client = make(dialect)
    got: dict[int, str] = {}

    async def one() -> None:
        async with client.activation(service="tg", country=2) as act:
            got[act.activation_id] = await act.wait_for_code(timeout=20)

    async with client:
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(one)
    assert len(got) == count
    for activation_id, code in got.items():
        assert sim.activations[activation_id].messages[0].code == code  # each code to its own waiter
    assert sim.open_activations() == []
    assert all(a.state is ActivationState.FINISHED for a in sim.activations.values())
    scans = sim.ledger.requests_for("getActiveActivations")
    ticks = client._get_scheduler().ticks
    page = client.provider.page_size or count
    assert scans <= ticks * math.ceil(count / page)
    # every getStatus confirms a change: one per delivered code, plus a little for races at the edges
    assert sim.ledger.requests_for("getStatus") <= count * 1.05
    assert sim.ledger.requests_for("getStatus") + scans < count * 3


async def test_timeout_cancels() -> None:
    sim, client = make(codes=CodeSchedule.never())
    async with client:
        number = await client.get_number_v2(service="tg", country=0)
        started = anyio.current_time()
        with pytest.raises(WaitTimeoutError) as info:
            await client.wait_for_code(number.activation_id, timeout=0.2)
        assert isinstance(info.value, TimeoutError) and anyio.current_time() - started < 1.0
    assert sim.activations[number.activation_id].state is ActivationState.CANCELLED


@pytest.mark.parametrize("dialect", ["sms-activate", "herosms"])
async def test_a_code_that_comes_as_the_wait_times_out_is_returned_not_paid_for_and_lost(dialect: str) -> None:
    """Found by the simulation harness (seed 1813 of a fleet world): the code reached the server just
    before the deadline, the poll that would have seen it came just after, the cancel was refused
    for the code and the number finished — paid for — while the caller got a timeout."""
    sim = Simulator(provider=dialect, codes=CodeSchedule.never())
    inner = sim.transport()

    class CodeAtTheCancel(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            params = request.url.params
            if params.get("action") == "setStatus" and params.get("status") == "8":
                sim.deliver_sms(int(params["id"]), "Your code is 424242", code="424242")
            return await inner.handle_async_request(request)

    client = SMSActivate(sim.api_key, provider=dialect, transport=CodeAtTheCancel(), poll_interval=0.05,
                         rate_limit=None)
    async with client:
        number = await client.get_number_v2(service="tg", country=2)
        assert await client.wait_for_code(number.activation_id, timeout=0.2) == "424242"
        handle = await client.start_activation(service="tg", country=2, timeout=0.2)
        assert await handle.wait_closed() is HandleState.FINISHED
        assert handle.codes == ["424242"] and handle.error is None
    assert sim.activations[number.activation_id].state is ActivationState.FINISHED
    assert sim.activations[handle.activation_id].state is ActivationState.FINISHED


async def test_timeout_inside_early_window_defers_cancel_until_aclose() -> None:
    sim, client = make(codes=CodeSchedule.never(), early=0.6)
    async with client:
        number = await client.get_number_v2(service="tg", country=0)
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_code(number.activation_id, timeout=0.1)
        assert sim.activations[number.activation_id].state is ActivationState.WAIT_CODE
        assert client._get_scheduler().pending_cancels == [number.activation_id]
    assert sim.activations[number.activation_id].state is ActivationState.CANCELLED
    assert any(r.status == 200 and r.action == "setStatus" for r in sim.ledger.requests)


async def test_a_deferred_cancel_is_carried_out_when_due_with_nobody_waiting() -> None:
    """Found by mutmut over _waiting (``_step``): the poller sleeps until the next deferred cancel is due
    even when no wait is left, and carries it out then — not at the next wait, nor at ``aclose()``."""
    sim, client = make(codes=CodeSchedule.never(), early=0.3)
    async with client:
        number = await client.get_number_v2(service="tg", country=0)
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_code(number.activation_id, timeout=0.05)
        assert client._get_scheduler().pending_cancels == [number.activation_id]
        with anyio.move_on_after(5):  # due 0.3 s after the purchase; a loaded machine gets a margin
            while sim.activations[number.activation_id].state is not ActivationState.CANCELLED:  # noqa: ASYNC110 - the simulator has no event for it
                await anyio.sleep(0.02)
        assert sim.activations[number.activation_id].state is ActivationState.CANCELLED
        assert client._get_scheduler().pending_cancels == []


async def test_caller_cancelled_mid_wait_cancels_the_number() -> None:
    sim, client = make(codes=CodeSchedule.never())
    async with client:
        with anyio.move_on_after(0.15):
            async with client.activation(service="tg", country=0) as act:
                await act.wait_for_code(timeout=30)
    assert sim.activations[act.activation_id].state is ActivationState.CANCELLED


async def test_exception_in_block_cancels_and_propagates_unwrapped() -> None:
    sim, client = make(codes=CodeSchedule.never())
    async with client:
        with pytest.raises(KeyError):
            async with client.activation(service="tg", country=0) as act:
                raise KeyError("user code failed")
    assert sim.activations[act.activation_id].state is ActivationState.CANCELLED


async def test_status_cancel_raises_at_once() -> None:
    sim, client = make(codes=CodeSchedule.never())
    async with client:
        number = await client.get_number_v2(service="tg", country=0)

        async def cancel_elsewhere() -> None:
            await anyio.sleep(0.1)
            sim.activations[number.activation_id].state = ActivationState.CANCELLED

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_elsewhere)
            started = anyio.current_time()
            with pytest.raises(ActivationCancelledError):
                await client.wait_for_code(number.activation_id, timeout=10)
            assert anyio.current_time() - started < 2


async def test_request_another_code_never_returns_the_old_one() -> None:
    sim, client = make(codes=CodeSchedule.fixed(0.05))
    async with client, client.activation(service="tg", country=0) as act:
        first = await act.wait_for_code(timeout=5)
        await act.request_another_code()
        second = await act.wait_for_code(timeout=5)
        assert second != first
        assert [m.code for m in sim.activations[act.activation_id].messages] == [first, second]
    assert sim.activations[act.activation_id].state is ActivationState.FINISHED


async def test_ready_status_only_where_accepted() -> None:
    # the code comes late enough that status 1 is always sent before it (a 1 after a code is refused)
    sim, client = make(codes=CodeSchedule.fixed(0.5))
    async with client, client.activation(service="tg", country=0) as act:
        await act.wait_for_code(timeout=5)
    assert sim.activations[act.activation_id].ready is True
    hero, hclient = make("herosms", codes=CodeSchedule.fixed(0.02))
    async with hclient, hclient.activation(service="tg", country=2) as hact:
        await hact.wait_for_code(timeout=5)
    assert not any(r.status == 400 for r in hero.ledger.requests)  # status 1 never sent to HeroSMS


async def test_rent_messages_are_each_handed_over_once_in_order() -> None:
    """Issue 42: a cursor per rent. For a rent this client bought every message is news — one that
    came while nobody waited, two in one interval — each handed over once, oldest first; for a rent
    found later (not bought here) the first wait starts after the messages already there, unless
    ``since="all"``."""
    sim, client = make()
    async with client:
        rent = await client.get_rent_number(service="tg", rent_time=4)
        sim.deliver_rent_sms(rent.id, "before")  # nobody waits yet
        result: list[str | None] = []

        async def wait() -> None:
            for _ in range(3):
                message = await client.wait_for_rent_sms(rent.id, timeout=5)
                result.append(message.text)

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.sleep(0.1)
            sim.deliver_rent_sms(rent.id, "after 1")  # two in one poll interval
            sim.deliver_rent_sms(rent.id, "after 2")
        assert result == ["before", "after 1", "after 2"]
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_rent_sms(rent.id, timeout=0.3)  # nothing handed over twice
        other = await client.get_rent_number(service="tg", rent_time=4)
        sim.deliver_rent_sms(other.id, "old")
        client._scheduler._session.known_rents.discard(other.id)  # as if another process had bought it
        async with anyio.create_task_group() as group:
            group.start_soon(_deliver_later, sim, other.id)
            found = await client.wait_for_rent_sms(other.id, timeout=5)
        assert found.text == "first"  # "old" was there before: skipped for a rent not bought here
        third = await client.get_rent_number(service="tg", rent_time=4)
        sim.deliver_rent_sms(third.id, "old 3")
        client._scheduler._session.known_rents.discard(third.id)
        assert (await client.wait_for_rent_sms(third.id, timeout=5, since="all")).text == "old 3"


async def test_rent_waits_from_zero_messages() -> None:
    sim, client = make()
    async with client:
        rent = await client.get_rent_number(service="tg")
        async with anyio.create_task_group() as group:
            group.start_soon(_deliver_later, sim, rent.id)
            message = await client.wait_for_rent_sms(rent.id, timeout=5)
    assert message.text == "first" and message.phone_from == "SPORTMASTER"


async def _deliver_later(sim: Simulator, rent_id: int) -> None:
    await anyio.sleep(0.1)
    sim.deliver_rent_sms(rent_id, "first")


async def test_notification_resolves_without_waiting_for_the_tick() -> None:
    sim, client = make(codes=CodeSchedule.never(), poll_interval=30)
    async with client:
        number = await client.get_number_v2(service="tg", country=0)

        async def push() -> None:
            await anyio.sleep(0.2)
            sim.deliver_sms(number.activation_id, "Your code is 777111")
            before = len(sim.ledger.requests)
            client.notify(999)  # a forged push for an activation nobody waits for: no request
            client.notify(number.activation_id)
            client.notify(number.activation_id)  # repeated: still confirmed by one getStatus
            await anyio.sleep(0.2)
            assert len(sim.ledger.requests) - before <= 2

        async with anyio.create_task_group() as group:
            group.start_soon(push)
            started = anyio.current_time()
            code = await client.wait_for_code(number.activation_id, timeout=10)
        assert code == "777111" and anyio.current_time() - started < 2


async def test_fallback_polls_each_activation_when_no_batch_action() -> None:
    provider = Provider(name="plain", base_url="http://sim/stubs/handler_api.php", has_active_activations=False,
                        rate_limit=None)
    sim = Simulator(codes=CodeSchedule.within(0.02, 0.2), early_cancel_seconds=0)
    client = SMSActivate(sim.api_key, provider=provider, transport=sim.transport(), poll_interval=0.05,
                         early_cancel_window=0)
    codes: list[str] = []

    async def one() -> None:
        async with client.activation(service="tg", country=0) as act:
            codes.append(await act.wait_for_code(timeout=10))

    async with client:
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(one)
    assert len(codes) == 20 and sim.ledger.requests_for("getActiveActivations") == 0
    assert sim.open_activations() == []


async def test_voice_code_via_status_v2() -> None:
    sim, client = make(codes=CodeSchedule.fixed(0.05, via="call"))
    async with client, client.activation(service="tg", country=0, activation_type=2) as act:
        code = await act.wait_for_code(timeout=5)
    assert code == sim.activations[act.activation_id].messages[0].code


async def test_waiting_without_async_with() -> None:
    sim, client = make(codes=CodeSchedule.fixed(0.05))
    number = await client.get_number_v2(service="tg", country=0)
    code = await client.wait_for_code(number.activation_id, timeout=5)
    await client.set_status(number.activation_id, 6)
    await client.aclose()
    assert code == sim.activations[number.activation_id].messages[0].code


async def test_a_cancel_that_keeps_failing_is_kept_and_done_at_aclose() -> None:
    sim, client = make(codes=CodeSchedule.never(), retry=RetryPolicy(attempts=2, base_delay=0))
    async with client:
        number = await client.get_number_v2(service="tg", country=0)
        sim.faults.inject("html_5xx", action="setStatus", times=2)
        with pytest.raises(WaitTimeoutError):  # the timeout, not the cancel's server error
            await client.wait_for_code(number.activation_id, timeout=0.1)
        assert client._get_scheduler().pending_cancels == [number.activation_id]
    assert sim.activations[number.activation_id].state is ActivationState.CANCELLED


async def test_a_number_closes_once_whatever_routes_report_it() -> None:
    """Issue 38 item 3: one event per close. A cancel used to be announced twice (the session on the
    successful setStatus, then the scheduler), as was a handle's finish and a refused cancel found
    finished; the guards, the handles and any counter of closes hear of each close once (NumberNews)."""
    sim, client = make(codes=CodeSchedule.never())
    heard: list[tuple[int, str]] = []
    async with client:
        client._session.news.on_closed(lambda activation_id, state: heard.append((activation_id, state)))
        timed_out = await client.get_number_v2(service="tg", country=0)
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_code(timed_out.activation_id, timeout=0.1)  # cancelled on timeout
        handle = await client.start_activation(service="tg", country=0, timeout=60)
        sim.deliver_sms(handle.activation_id, "Your code is 4321")
        assert await handle.wait_for_code() == "4321"
        await handle.wait_closed()  # finished by the client on the code
        coded = await client.get_number_v2(service="tg", country=0)
        sim.deliver_sms(coded.activation_id, "Your code is 1111")
        outcome = await client._scheduler.cancel_number(coded.activation_id)  # refused after a code: finished
        assert outcome.state == "finished"
    assert sorted(heard) == sorted([(timed_out.activation_id, "cancelled"), (handle.activation_id, "finished"),
                                    (coded.activation_id, "finished")])


async def test_every_settled_purchase_is_news_once() -> None:
    """Issue 38 item 3: a purchase settles in one place (``NumberNews.bought``) whichever of its paths
    settled it — answered, or lost on the way back and found by reconciliation."""
    sim, client = make(codes=CodeSchedule.never(), retry=RetryPolicy(attempts=4, base_delay=0, max_delay=0,
                                                                     settle=0.01))
    bought: list[tuple[int, str]] = []
    async with client:
        client._session.news.on_bought(lambda purchase: bought.append((purchase.id, purchase.kind)))
        answered = await client.get_number_v2(service="tg", country=0)
        sim.faults.inject("lost_purchase", action="getNumberV2")  # committed, its answer lost
        reconciled = await client.get_number_v2(service="tg", country=0)
        rent = await client.get_rent_number(service="tg", rent_time=4)
        await client.get_balance()
    assert reconciled.activation_id != answered.activation_id
    assert bought == [(answered.activation_id, "activation"), (reconciled.activation_id, "activation"),
                      (rent.id, "rent")]
    assert len(sim.ledger.purchases) == 3


async def test_a_waits_own_poll_interval_is_kept_and_its_timeout_names_the_activation() -> None:
    """Found by mutmut over _waiting (``Scheduler.wait``): ``poll_interval`` given to one wait is the
    pace of its polling, whatever the client's; a wait that times out says which activation and how
    long it waited."""
    sim, client = make(codes=CodeSchedule.never(), poll_interval=600.0)  # the client's pace: ten minutes
    async with client:
        number = await client.get_number_v2(service="tg", country=0)

        async def deliver_later() -> None:
            await anyio.sleep(0.3)  # after the first tick
            sim.deliver_sms(number.activation_id, "code 5150", code="5150")

        async with anyio.create_task_group() as group:
            group.start_soon(deliver_later)
            code = await client.wait_for_code(number.activation_id, timeout=5, poll_interval=0.05,
                                              cancel_on_timeout=False)  # (a cancel refused for a code returns it)
        assert code == "5150"
        other = await client.get_number_v2(service="tg", country=0)
        with pytest.raises(WaitTimeoutError) as info:
            await client.wait_for_code(other.activation_id, timeout=0.05, cancel_on_timeout=False)
    assert info.value.message == f"no code for activation {other.activation_id} within 0.05s"
    assert (info.value.activation_id, info.value.action) == (other.activation_id, "getStatus")
