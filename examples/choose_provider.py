"""Choosing a provider: presets, any compatible provider, and falling back across them.

Run: python examples/choose_provider.py   (simulators of both dialects; no key needed)
"""

from __future__ import annotations

import anyio

from smsactivate_async import NoNumbersError, Number, Provider, SMSActivate
from smsactivate_async.simulator import Simulator

# Any SMS-Activate-compatible provider: its handler URL, dialect and limits.
GRIZZLY_LIKE = Provider(name="my-provider", base_url="https://api.example.invalid/stubs/handler_api.php",
                        dialect="sms-activate", rate_limit=5, burst=5)


async def buy_anywhere(clients: list[SMSActivate], service: str, country: int) -> Number:
    """Try each provider in turn until one has numbers."""
    for client in clients:
        try:
            return await client.get_number_v2(service=service, country=country)
        except NoNumbersError:
            print(f"{client.provider.name}: no numbers, trying the next provider")
    raise NoNumbersError(f"no provider has {service} numbers in country {country}")


async def main() -> Number:
    empty, stocked = Simulator(), Simulator(provider="herosms")
    empty.set_stock("tg", 2, 0)
    first = SMSActivate(empty.api_key, provider="sms-activate", transport=empty.transport())
    second = SMSActivate(stocked.api_key, provider="herosms", transport=stocked.transport())
    async with first, second:
        number = await buy_anywhere([first, second], "tg", 2)
    print(f"Bought +{number.phone_number} (activation {number.activation_id})")
    return number


if __name__ == "__main__":
    anyio.run(main)
