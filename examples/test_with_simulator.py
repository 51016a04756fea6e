"""Testing your own code with the simulator fixture (the pytest plugin ships with the package).

Run: pytest examples/test_with_simulator.py
"""

from __future__ import annotations

import pytest

from smsactivate_async import SMSActivate, WaitTimeoutError
from smsactivate_async.simulator import CodeSchedule, ManualClock, Simulator

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def sign_up(client: SMSActivate) -> str:
    """The code under test: buys a number and returns the code."""
    async with client.activation(service="tg", country=0) as act:
        return await act.wait_for_code(timeout=5)


async def test_sign_up_gets_the_code(sms_simulator: Simulator, sms_client: SMSActivate) -> None:
    sms_simulator.clock = ManualClock()
    sms_simulator.codes = CodeSchedule.never()
    async with sms_client:
        async with sms_client.activation(service="tg", country=0) as act:
            sms_simulator.deliver_sms(act.activation_id, "Telegram code 12345")
            assert await act.wait_for_code(timeout=5) == "12345"
    assert sms_simulator.open_activations() == []


@pytest.fixture
def sms_simulator_options() -> dict[str, object]:
    return {"codes": CodeSchedule.never(), "early_cancel_seconds": 0}


async def test_no_code_cancels_and_refunds(sms_simulator: Simulator, sms_client: SMSActivate) -> None:
    before = sms_simulator.balance()
    async with sms_client:
        with pytest.raises(WaitTimeoutError):
            async with sms_client.activation(service="tg", country=0) as act:
                await act.wait_for_code(timeout=0.2)
    assert sms_simulator.balance() == before and act.activation_id in [r.id for r in sms_simulator.ledger.refunds]
