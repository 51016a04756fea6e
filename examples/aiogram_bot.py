"""An aiogram v3 bot: /buy rents a number for the user and sends the code; /cancel gives it back.

One client for the whole bot, made in the Dispatcher's startup hook and closed in its shutdown
hook (no ``async with`` around the bot). Each /buy handler waits for its own user's code; one user's
/cancel, timeout or error touches nobody else's wait, and every number is finished or cancelled by
the client even if a handler is dropped.

A restart loses no paid code: with a journal (``SMSACTIVATE_STORE=sqlite:///bot.db``) the bot
suspends the numbers still waiting at shutdown (open at the provider, journaled with the user's
chat), and the next start resumes them and sends each user their code when it comes.

Run: BOT_TOKEN=... SMSACTIVATE_API_KEY=... [SMSACTIVATE_STORE=sqlite:///bot.db] python examples/aiogram_bot.py
(the test suite drives this same module with a simulated provider and a recording bot session)
"""

from __future__ import annotations

import asyncio
import os

from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command
from aiogram.types import Message

from smsactivate_async import (
    ActivationCancelledError,
    ActivationHandle,
    ClientClosedError,
    InsufficientBalanceError,
    NoNumbersError,
    NumberOutcome,
    PurchaseUncertainError,
    RateLimitedError,
    SMSActivate,
    SMSActivateError,
    WaitTimeoutError,
)

router = Router()
#: the client's settings (the test suite points them at a simulated provider)
SMS_OPTIONS: dict[str, object] = {"provider": "herosms"}
#: the user's number in progress (one per user): what /cancel acts on
numbers: dict[int, ActivationHandle] = {}
WAIT_SECONDS = 600.0


def in_plain_words(error: SMSActivateError) -> str:
    """What to tell a user when something went wrong (the details go to the log, not to them)."""
    if isinstance(error, NoNumbersError):
        return "No numbers for this service right now. Try again in a few minutes."
    if isinstance(error, InsufficientBalanceError):
        return "The shop is out of credit. We have been told; please try later."
    if isinstance(error, RateLimitedError):
        return "Too many requests right now. Please try again in a minute."
    if isinstance(error, PurchaseUncertainError):
        return "We could not confirm your number. Nothing is charged twice; please try again shortly."
    if isinstance(error, ClientClosedError) and error.reason == "suspended":
        return "The bot is restarting; your number stays open and its code will come here after the restart."
    if isinstance(error, (WaitTimeoutError, ClientClosedError)) and error.outcome is not None:
        # the one account of the number (NumberOutcome): cancelled and refunded, cancelled later, still
        # open… — never "cancelled and refunded" for a number that is not
        prefix = "The bot is restarting. " if isinstance(error, ClientClosedError) else "No code came. "
        account = NumberOutcome(error.activation_id or 0, error.outcome, error.cancel_at,  # type: ignore[arg-type]
                                getattr(error, "reason", None))
        return prefix + account.describe()
    if isinstance(error, ActivationCancelledError):
        return "The number was cancelled; its cost is refunded."
    return "Something went wrong on our side. Please try again."


@router.message(Command("buy"))
async def buy(message: Message, sms: SMSActivate) -> None:
    user = message.from_user.id if message.from_user else message.chat.id
    if user in numbers:
        await message.answer("You already have a number waiting for its code. Send /cancel to drop it.")
        return
    try:
        # context=the chat: kept on the handle, and across a restart (an int survives a suspension)
        handle = await sms.start_activation(service="tg", country=6, timeout=WAIT_SECONDS, context=message.chat.id)
    except SMSActivateError as error:
        await message.answer(in_plain_words(error))
        return
    numbers[user] = handle
    await message.answer(f"Your number: +{handle.phone_number}. Waiting for the code…")
    try:
        # The client waits in its own task; if this handler is dropped, the client still finishes or
        # cancels the number.
        code = await handle.wait_for_code()
        await message.answer(f"Your code: {code}")
    except SMSActivateError as error:
        if numbers.get(user) is handle:  # not dropped by /cancel, which answers for itself
            await message.answer(in_plain_words(error))
    finally:
        if numbers.get(user) is handle:
            del numbers[user]


@router.message(Command("cancel"))
async def cancel(message: Message) -> None:
    user = message.from_user.id if message.from_user else message.chat.id
    handle = numbers.pop(user, None)
    if handle is None:
        await message.answer("You have no number waiting.")
        return
    await handle.cancel()
    await message.answer(handle.account.describe())  # cancelled and refunded, or cancelled later (when)


async def follow_resumed(bot: Bot, handle: ActivationHandle) -> None:
    """A number suspended at the last shutdown: its user gets the code (or what became of it) here."""
    assert isinstance(handle.context, int)
    try:
        text = f"Your code: {await handle.wait_for_code()}"
    except SMSActivateError as error:
        text = in_plain_words(error)
    await bot.send_message(handle.context, text)


async def on_startup(dispatcher: Dispatcher, bot: Bot) -> None:
    # One client for the whole bot. With a journal, the numbers still waiting at shutdown are
    # suspended, not cancelled, and resumed here; numbers left open by a crash are closed by the
    # next start (recover()).
    store = os.environ.get("SMSACTIVATE_STORE")
    journal = {"store": store, "owner": os.environ.get("SMSACTIVATE_OWNER", "aiogram-bot"), "suspend_on_close": True}
    sms = SMSActivate(os.environ["SMSACTIVATE_API_KEY"], **SMS_OPTIONS, **(journal if store else {}))  # type: ignore[arg-type]
    dispatcher["sms"] = sms
    await sms.__aenter__()
    dispatcher["resumed"] = [asyncio.get_running_loop().create_task(follow_resumed(bot, handle))
                             for handle in sms.resumed if isinstance(handle.context, int)]


async def on_shutdown(dispatcher: Dispatcher) -> None:
    # Every wait still running ends with ClientClosedError saying what became of its number (with a
    # journal: suspended); each /buy handler tells its user.
    await dispatcher["sms"].aclose()


def make_dispatcher() -> Dispatcher:
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    dispatcher.startup.register(on_startup)
    dispatcher.shutdown.register(on_shutdown)
    return dispatcher


if __name__ == "__main__":
    import asyncio

    asyncio.run(make_dispatcher().start_polling(Bot(os.environ["BOT_TOKEN"])))
