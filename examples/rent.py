"""Rent a number for a few hours and read the messages that arrive.

Run: python examples/rent.py   (simulator; set SMSACTIVATE_API_KEY for a real provider)
"""

from __future__ import annotations

import anyio
from _setup import make

from smsactivate_async import RentSms, SMSActivate
from smsactivate_async.simulator import Simulator


async def receive_one(client: SMSActivate, simulator: Simulator | None) -> RentSms:
    rent = await client.get_rent_number(service="tg", rent_time=4)
    print(f"Rented +{rent.number} until {rent.end_date}")
    async with anyio.create_task_group() as group:
        if simulator is not None:  # on the simulator, somebody has to send the SMS
            group.start_soon(_send_later, simulator, rent.id)
        message = await client.wait_for_rent_sms(rent.id, timeout=600)
    print(f"From {message.phone_from}: {message.text}")
    await client.set_rent_status(rent.id, 1)  # finish the rent
    return message


async def _send_later(simulator: Simulator, rent_id: int) -> None:
    await anyio.sleep(0.3)
    simulator.deliver_rent_sms(rent_id, "Your code is 2792")


async def main() -> RentSms:
    client, simulator = make()
    async with client:
        return await receive_one(client, simulator)


if __name__ == "__main__":
    anyio.run(main)
