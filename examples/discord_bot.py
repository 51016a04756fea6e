"""A discord.py 2.x bot: /buy shows a number and follows up with its code; /cancel gives it back;
/balance shows the account's balance.

Discord's rules shape it: an interaction must be answered within **3 seconds** — so every command
defers first, before any request to the provider — and its follow-ups work for **15 minutes**, so a
number is waited on for at most ``WAIT_SECONDS`` (10 minutes) and a message that cannot be sent as a
follow-up any more goes to the user's DMs. One client serves the whole bot: opened in
``setup_hook``, closed in ``close()``, where every user still waiting is told the truth about their
number (cancelled and refunded, cancelled later, or still open) — from the account the library gives,
never from a guess. A /buy that comes while the bot is closing buys nothing. With a journal
(``SMSACTIVATE_STORE=sqlite:///bot.db``) the bot suspends the numbers still waiting at shutdown
instead of closing them, and the next start resumes them and sends each user their code by DM.

Run: ``DISCORD_TOKEN=… SMSACTIVATE_API_KEY=… python examples/discord_bot.py`` (without a key it
cannot run: Discord needs a real token; tests/test_recipes.py drives the commands offline).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import discord
from discord import app_commands

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

log = logging.getLogger("discord_bot")
#: under Discord's 15-minute follow-up window, with room for the cancel
WAIT_SECONDS = 600.0


def in_plain_words(error: SMSActivateError) -> str:
    """What to tell a user when something went wrong, true to what became of their number."""
    if isinstance(error, ClientClosedError) and error.outcome is None:
        return "The bot is restarting; nothing was bought. Please try again in a minute."
    if isinstance(error, ClientClosedError) and error.reason == "suspended":
        return "The bot is restarting; your number stays open and its code will reach you by direct message."
    if isinstance(error, (WaitTimeoutError, ClientClosedError)) and error.outcome is not None:
        prefix = "The bot is restarting. " if isinstance(error, ClientClosedError) else "No code came. "
        account = NumberOutcome(error.activation_id or 0, error.outcome, error.cancel_at,  # type: ignore[arg-type]
                                getattr(error, "reason", None))
        return prefix + account.describe()
    if isinstance(error, ActivationCancelledError):
        return "The number was cancelled; its cost is refunded."
    if isinstance(error, NoNumbersError):
        return "No numbers for this service right now. Try again in a few minutes."
    if isinstance(error, InsufficientBalanceError):
        return "The shop is out of credit. We have been told; please try later."
    if isinstance(error, RateLimitedError):
        return "Too many requests right now. Please try again in a minute."
    if isinstance(error, PurchaseUncertainError):
        return "We could not confirm your number. Nothing is charged twice; please try again shortly."
    return "Something went wrong on our side. Please try again."


async def tell(interaction: discord.Interaction, text: str) -> None:
    """A follow-up, or — its 15 minutes over, or the interaction gone — a direct message."""
    try:
        await interaction.followup.send(text)
    except discord.HTTPException:
        try:
            await interaction.user.send(text)
        except discord.HTTPException:
            log.warning("could not tell user %s: %s", interaction.user.id, text)


class SmsBot(discord.Client):
    def __init__(self, **sms_options: Any) -> None:
        super().__init__(intents=discord.Intents.none())
        self.tree = app_commands.CommandTree(self)
        self.sms_options = sms_options
        self.sms: SMSActivate | None = None
        #: the number in progress per user: what /cancel acts on
        self.numbers: dict[int, int] = {}
        self._resumed: set[asyncio.Task[None]] = set()
        # app commands are plain functions (discord.py binds methods only in cogs and groups)
        self.tree.command(name="buy", description="Get a number for Telegram and its code")(self.buy)
        self.tree.command(name="cancel", description="Give your number back")(self.cancel)
        self.tree.command(name="balance", description="The shop's balance")(self.balance)

    async def setup_hook(self) -> None:
        options = self.sms_options or {"provider": os.environ.get("SMSACTIVATE_PROVIDER", "herosms")}
        store = os.environ.get("SMSACTIVATE_STORE")  # a journal: numbers survive a restart of the bot
        if store:
            options = {"store": store, "owner": os.environ.get("SMSACTIVATE_OWNER", "discord-bot"),
                       "suspend_on_close": True, **options}
        self.sms = SMSActivate(os.environ.get("SMSACTIVATE_API_KEY", ""), **options)
        await self.sms.__aenter__()
        # numbers suspended at the last shutdown: their users hear of their codes by direct message
        for handle in self.sms.resumed:
            if isinstance(handle.context, int):
                task = asyncio.get_running_loop().create_task(self._follow_resumed(handle))
                self._resumed.add(task)
                task.add_done_callback(self._resumed.discard)

    async def _follow_resumed(self, handle: ActivationHandle) -> None:
        user_id = handle.context
        assert isinstance(user_id, int)
        self.numbers[user_id] = handle.activation_id
        try:
            text = f"Your code: {await handle.wait_for_code()}"
        except SMSActivateError as error:
            text = in_plain_words(error)
        finally:
            if self.numbers.get(user_id) == handle.activation_id:
                del self.numbers[user_id]
        try:
            await (await self.fetch_user(user_id)).send(text)
        except discord.HTTPException:
            log.warning("could not tell user %s: %s", user_id, text)

    async def close(self) -> None:
        if self.sms is not None:
            # Every wait still running ends with ClientClosedError saying what became of its number;
            # each /buy handler tells its user. What is left is also returned: log it.
            for account in await self.sms.aclose():
                log.info("left at shutdown: %s %s (%s)", account.activation_id, account.outcome, account.reason)
        await super().close()

    async def buy(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)  # first, within Discord's 3 seconds
        assert self.sms is not None
        user = interaction.user.id
        if user in self.numbers:
            await tell(interaction, "You already have a number waiting for its code. Use /cancel to drop it.")
            return
        try:
            # context=user: kept on the handle, and across a restart (an int survives a suspension)
            handle = await self.sms.start_activation(service="tg", country=6, timeout=WAIT_SECONDS, context=user)
        except SMSActivateError as error:
            await tell(interaction, in_plain_words(error))
            return
        self.numbers[user] = handle.activation_id
        await tell(interaction, f"Your number: +{handle.phone_number}. Waiting for the code…")
        try:
            code = await handle.wait_for_code()
            await tell(interaction, f"Your code: {code}")
        except SMSActivateError as error:
            if self.numbers.get(user) == handle.activation_id:  # /cancel answers for itself
                await tell(interaction, in_plain_words(error))
        finally:
            if self.numbers.get(user) == handle.activation_id:
                del self.numbers[user]

    async def cancel(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        assert self.sms is not None
        activation_id = self.numbers.pop(interaction.user.id, None)
        if activation_id is None:
            await tell(interaction, "You have no number waiting.")
            return
        try:
            handle = self.sms.handle(activation_id)
        except SMSActivateError:
            await tell(interaction, "Your number has already ended.")
            return
        await handle.cancel()
        await tell(interaction, handle.account.describe())  # cancelled and refunded, or when it will be

    async def balance(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        assert self.sms is not None
        try:
            await tell(interaction, f"Balance: {await self.sms.get_balance()}")
        except SMSActivateError as error:
            await tell(interaction, in_plain_words(error))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    SmsBot().run(os.environ["DISCORD_TOKEN"])
