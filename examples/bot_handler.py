"""A bot handler buying one number: whatever happens to the handler, the number is never leaked.

Run: python examples/bot_handler.py   (simulator; set SMSACTIVATE_API_KEY for a real provider)
"""

from __future__ import annotations

import anyio
from _setup import make_client

from smsactivate_async import NoNumbersError, SMSActivate, WaitTimeoutError


async def verify_telegram(client: SMSActivate, country: int = 6) -> str:
    """What a /verify command would do: buy, show the number, wait for the code, finish."""
    try:
        async with client.activation(service="tg", country=country, max_price="0.5") as act:
            print(f"Use +{act.phone_number} to sign in; waiting for the code…")
            code = await act.wait_for_code(timeout=300)
            return f"Your code: {code}"  # leaving the block finishes the activation (status 6)
    except NoNumbersError:
        return "No numbers right now, try another country."
    except WaitTimeoutError:
        return "No code came; the number was cancelled and refunded."  # the block cancelled it (status 8)


async def main() -> str:
    async with make_client() as client:
        reply = await verify_telegram(client)
    print(reply)
    return reply


if __name__ == "__main__":
    anyio.run(main)
