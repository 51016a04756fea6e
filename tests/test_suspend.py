"""Suspend and resume (issue 39): a deploy keeps the numbers still waiting open, the fleet leaves them
alone until their deadline, and the next process of the same owner picks them up — on a real sqlite
file, a real redis-server and a Redis Cluster node."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from smsactivate_async import ActivationNotFoundError, InvalidArgumentError, SMSActivate
from smsactivate_async.simulator import ActivationState, CodeSchedule, Simulator

pytestmark = pytest.mark.anyio


def _client(sim: Simulator, url: str, owner: str, **options: Any) -> SMSActivate:
    return SMSActivate(sim.api_key, store=url, owner=owner, transport=sim.transport(), rate_limit=None,
                       poll_interval=0.05, early_cancel_window=0, lease=1.0, **options)


async def test_a_deploy_suspends_and_the_next_process_resumes(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    first = _client(sim, persistent_url, "service")
    async with first:
        waiting = await first.start_activation(service="tg", country=0, timeout=60, context="user-1")
        coded = await first.start_activation(service="tg", country=0, timeout=60, finish_on_code=False)
        short = await first.start_activation(service="tg", country=0, timeout=4.0)
        sim.deliver_sms(coded.activation_id, "code 111", code="111")
        assert await coded.wait_for_code(timeout=5) == "111"
        left = await first.aclose(suspend=True)
    assert sorted((o.activation_id, o.outcome, o.reason) for o in left) == sorted(
        (h.activation_id, "left_open", "suspended") for h in (waiting, coded, short))
    assert next(o for o in left if o.activation_id == waiting.activation_id).context == "user-1"
    assert all(sim.activations[h.activation_id].state.active for h in (waiting, coded, short))

    # while the service is down: a code arrives, and another client of the account recovers
    sim.deliver_sms(waiting.activation_id, "code 222", code="222")
    async with _client(sim, persistent_url, "other") as other:
        await anyio.sleep(1.2)  # the service's lease has run out
        report = await other.recover()
    assert not report.cancelled and not report.finished, report  # suspended numbers are left alone
    assert all(sim.activations[h.activation_id].state.active for h in (waiting, coded, short))

    second = _client(sim, persistent_url, "service")
    async with second:
        resumed = {h.activation_id: h for h in second.resumed}
        assert set(resumed) == {waiting.activation_id, coded.activation_id, short.activation_id}
        assert resumed[waiting.activation_id].context == "user-1"  # a str context survives the restart
        again = second.handle(waiting.activation_id)
        assert again.resumed and await again.wait_for_code(timeout=5) == "222"
        kept = second.handle(coded.activation_id)
        assert kept.codes == ["111"]  # handed over before the restart: not handed over again
        with pytest.raises(ActivationNotFoundError):
            second.handle(123456)
        with anyio.fail_after(10):
            while sim.activations[short.activation_id].state.active:  # noqa: ASYNC110 (the server's state, polled)
                await anyio.sleep(0.05)
        await kept.finish()
    assert sim.activations[waiting.activation_id].state is ActivationState.FINISHED
    assert sim.activations[coded.activation_id].state is ActivationState.FINISHED
    assert sim.activations[short.activation_id].state is ActivationState.CANCELLED  # its deadline had passed


async def test_a_suspended_number_whose_owner_never_returns_is_closed_after_its_deadline(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with _client(sim, persistent_url, "gone") as gone:
        handle = await gone.start_activation(service="tg", country=0, timeout=3.0)
        await gone.aclose(suspend=True)
    suspended_at = anyio.current_time()
    async with _client(sim, persistent_url, "survivor"):
        # the survivor recovers by itself every lease (1 s): not before the number's deadline, soon after it
        with anyio.fail_after(10):
            while sim.activations[handle.activation_id].state.active:  # noqa: ASYNC110 (the server's state, polled)
                await anyio.sleep(0.05)
        closed_after = anyio.current_time() - suspended_at
    assert 2.5 <= closed_after < 6.0, closed_after
    assert sim.activations[handle.activation_id].state is ActivationState.CANCELLED


async def test_suspend_needs_a_persistent_store_and_closes_nothing_without_one() -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    with pytest.raises(InvalidArgumentError, match="persistent store"):
        SMSActivate(sim.api_key, transport=sim.transport(), suspend_on_close=True)
    client = SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, early_cancel_window=0)
    async with client:
        handle = await client.start_activation(service="tg", country=0, timeout=60)
        with pytest.raises(InvalidArgumentError, match="nothing was closed"):
            await client.aclose(suspend=True)
        assert sim.activations[handle.activation_id].state.active and not client.closing
    assert sim.activations[handle.activation_id].state is ActivationState.CANCELLED  # the plain close


async def test_suspend_on_close_suspends_at_the_end_of_async_with(tmp_path: Any) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    async with _client(sim, url, "bot", suspend_on_close=True) as client:
        handle = await client.start_activation(service="tg", country=0, timeout=60)
    assert sim.activations[handle.activation_id].state.active
    async with _client(sim, url, "bot") as client:
        assert [h.activation_id for h in client.handles] == [handle.activation_id]
        await client.handle(handle.activation_id).cancel()
    assert sim.activations[handle.activation_id].state is ActivationState.CANCELLED
