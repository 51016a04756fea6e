"""The truth about every number (issue 40): a wait's error, a handle's state and what ``aclose()``
returns say the same thing of a number, and it is what the simulator's state says; nothing is bought
once closing has begun."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from smsactivate_async import (
    ActivationNotFoundError,
    ClientClosedError,
    HandleState,
    NumberOutcome,
    SMSActivate,
    SMSActivateError,
    WaitTimeoutError,
)
from smsactivate_async.simulator import CodeSchedule, LoopSimClock, Simulator
from smsactivate_async.simulator._core import ActivationState

from .conftest import on_virtual_time

pytestmark = pytest.mark.anyio

_AT_SERVER = {"cancelled": {ActivationState.CANCELLED}, "finished": {ActivationState.FINISHED},
              "cancel_deferred": {ActivationState.WAIT_CODE, ActivationState.CODE_RECEIVED},
              "left_open": {ActivationState.WAIT_CODE, ActivationState.CODE_RECEIVED},
              "waiting": {ActivationState.WAIT_CODE}}


def _agrees(sim: Simulator, account: NumberOutcome) -> None:
    state = sim.activations[account.activation_id].state
    assert state in _AT_SERVER[account.outcome], f"{account} but the server says {state}"


def make(early: float, **options: Any) -> tuple[Simulator, SMSActivate]:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=early, clock=LoopSimClock())
    client = SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=1.0,
                         early_cancel_window=early, **options)
    return sim, client


@on_virtual_time()
@pytest.mark.parametrize("early", [0.0, 120.0], ids=["cancel-now", "cancel-too-early"])
async def test_waits_ended_by_aclose_say_what_became_of_each_number(early: float) -> None:
    sim, client = make(early, close_timeout=5.0)
    errors: list[BaseException] = []
    async with client:
        handles = [await client.start_activation(service="tg", country=0, timeout=600, context={"user": i})
                   for i in range(8)]

        async def wait(handle: Any) -> None:
            try:
                await handle.wait_for_code()
            except SMSActivateError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            for handle in handles:
                group.start_soon(wait, handle)
            await anyio.sleep(3)
            left = await client.aclose()
    assert len(errors) == 8 and all(isinstance(e, ClientClosedError) for e in errors), errors
    for error in errors:
        assert isinstance(error, ClientClosedError) and error.account is not None
        _agrees(sim, error.account)
        assert error.outcome == ("cancelled" if early == 0 else "left_open")  # in memory nobody cancels later
        assert "cancel" not in str(error) or early == 0 or "not refunded" in str(error)
    if early:
        assert sorted(o.activation_id for o in left) == sorted(h.activation_id for h in handles)
        assert all(o.outcome == "left_open" and o.cancel_at is not None for o in left)
        assert [o.context for o in sorted(left, key=lambda o: o.activation_id)] == [{"user": i} for i in range(8)]
    else:
        assert left == [] and all(h.state is HandleState.CANCELLED for h in handles)
    for handle in handles:
        _agrees(sim, handle.account)


@on_virtual_time()
async def test_nothing_is_bought_once_closing_has_begun() -> None:
    sim, client = make(20.0, close_timeout=30.0)  # aclose() waits for the deferred cancel: about 20 s
    refused: list[BaseException] = []
    async with client:
        await client.start_activation(service="tg", country=0, timeout=600)  # its deferred cancel holds aclose()

        async def late_buy() -> None:
            await anyio.sleep(1)
            assert client.closing
            try:
                await client.start_activation(service="tg", country=0)
            except ClientClosedError as exc:
                refused.append(exc)
            try:
                await client.get_number_v2(service="tg", country=0)
            except ClientClosedError as exc:
                refused.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(late_buy)
            await client.aclose()
    assert len(refused) == 2 and all("nothing bought" in str(e) for e in refused)
    assert len(sim.ledger.purchases) == 1
    assert not isinstance(refused[0], ValueError)  # not a bad argument: the client was closing


@on_virtual_time()
async def test_a_call_timeout_equal_to_the_handles_reports_the_handles_end() -> None:
    sim, client = make(120.0)
    async with client:
        handle = await client.start_activation(service="tg", country=0, timeout=10)
        with pytest.raises(WaitTimeoutError) as caught:
            await handle.wait_for_code(timeout=10)
        assert caught.value.outcome == "cancel_deferred" and caught.value.cancel_at is not None
        _agrees(sim, handle.account)
        short = await client.start_activation(service="tg", country=0, timeout=60)
        with pytest.raises(WaitTimeoutError) as early:
            await short.wait_for_code(timeout=5)
        assert early.value.outcome == "waiting" and "still open" in str(early.value)
        assert client.handle(short.activation_id) is short
        await client.aclose(timeout=0)


async def test_handle_finds_live_handles_and_refuses_unknown_ids() -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, early_cancel_window=0) as client:
        handle = await client.start_activation(service="tg", country=0, context="interaction-1")
        assert client.handle(handle.activation_id) is handle and handle.context == "interaction-1"
        assert client.handle(str(handle.activation_id)) is handle  # type: ignore[arg-type]
        with pytest.raises(ActivationNotFoundError) as caught:
            client.handle(123)
        assert caught.value.code == "NOT_HELD"
        await handle.cancel()
        ended = client.handle(handle.activation_id)  # ended: still found, for a caller's last look
        assert ended is handle and ended.account.outcome == "cancelled" and handle not in client.handles


def test_client_closed_error_is_no_value_error() -> None:
    assert not issubclass(ClientClosedError, ValueError)
    assert issubclass(ClientClosedError, SMSActivateError)
    describe = NumberOutcome(1, "cancel_deferred").describe()
    assert "refund" in describe and NumberOutcome(1, "left_open", reason="suspended").describe().count("open") == 1
